"""Content: articles read into one model, composed into a newsletter, rendered to MJML, HTML and text, linted."""
