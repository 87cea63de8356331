// The Form Post Response Mode's page: sends the authorization response on at once.
// Without JavaScript, its button does the same.
document.getElementById("form-post").submit();
