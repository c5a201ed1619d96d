"""Textual screens: the prediction browser, confusion matrix, digit drawing and the app's own."""
