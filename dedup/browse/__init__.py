"""Reading stories back: the story book, JSON views, the static HTML report and the web page."""
