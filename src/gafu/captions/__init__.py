"""Captions: reading and writing them (`text`), and batch editing with undo (`gafu tags`)."""
