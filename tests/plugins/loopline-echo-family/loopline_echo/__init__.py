"""The echo family: answers a text with what it learned for it, else the text itself in capitals."""
