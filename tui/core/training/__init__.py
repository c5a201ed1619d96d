"""Training: model, session, callbacks, controls, the controller, its phases, events, snapshot."""
