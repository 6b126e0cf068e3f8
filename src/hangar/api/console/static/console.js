// Times: the server writes UTC; show the viewer's local time, UTC stays in the title.
(function () {
  function localise(root) {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d)) return;
      el.textContent = d.toLocaleString(undefined, {year: "numeric", month: "short", day: "numeric",
        hour: "2-digit", minute: "2-digit", second: "2-digit"});
      el.setAttribute("data-local", "1");
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSettle", function (e) { localise(e.target); });
  // a submit button says it is working until the answer comes
  document.addEventListener("submit", function (e) {
    var b = e.target.querySelector("button[type=submit][data-busy]");
    if (b) { b.setAttribute("aria-busy", "true"); b.textContent = b.getAttribute("data-busy"); }
  });
})();
