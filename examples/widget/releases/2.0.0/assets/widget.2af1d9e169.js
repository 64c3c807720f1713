// Picasso widget 2.0.0: renders a greeting card and the release it came from (read from version.json).
(function () {
  var nodes = document.querySelectorAll("[data-picasso-widget]");
  function render(release) {
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = "Picasso widget " + release;
      nodes[i].className = "picasso-widget";
    }
  }
  render("2.0.0");
  fetch("version.json")
    .then(function (r) { return r.json(); })
    .then(function (v) { render(v.release); })
    .catch(function () { /* keep the built-in release label */ });
})();
