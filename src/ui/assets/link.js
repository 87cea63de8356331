// Takes the emailed link's token out of the address bar (and so out of the history)
// as the page loads; the form still holds it.
history.replaceState(null, "", location.pathname);
