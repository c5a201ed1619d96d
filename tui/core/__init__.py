"""The training core: data, model, session, runs and rendering. No Textual here."""
