// Placeholder: the browser client (issue 7) replaces this file.
