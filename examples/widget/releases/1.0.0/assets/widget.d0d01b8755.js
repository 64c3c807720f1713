// Picasso widget 1.0.0: renders a greeting card into every element marked data-picasso-widget.
(function () {
  var RELEASE = "1.0.0";
  var nodes = document.querySelectorAll("[data-picasso-widget]");
  for (var i = 0; i < nodes.length; i++) {
    nodes[i].textContent = "Picasso widget " + RELEASE;
    nodes[i].className = "picasso-widget";
  }
})();
