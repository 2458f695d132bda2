// dataops console: small progressive enhancements; every page works without this file.
// - <form data-confirm="Push 40 images to vendor-a?">: asks before submitting.
// - <select data-autosubmit>: submits its form when the choice changes.
// - <main data-refresh="10">: reloads the page every 10 s while the tab is visible
//   (live job progress), unless the user is typing in a form.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      return;
    }
    var buttons = form.querySelectorAll("button[type=submit]");
    window.setTimeout(function () {
      buttons.forEach(function (b) { b.disabled = true; });
    }, 0);
  });

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.requestSubmit();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var holder = document.querySelector("[data-refresh]");
    if (!holder) return;
    var seconds = parseInt(holder.getAttribute("data-refresh"), 10);
    if (!(seconds >= 2)) return;
    window.setInterval(function () {
      var typing = document.activeElement && /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
      if (document.visibilityState === "visible" && !typing) window.location.reload();
    }, seconds * 1000);
  });
})();
