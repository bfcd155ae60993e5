// Shows every <time datetime="…"> in the reader's time zone. The server writes UTC text (its title
// keeps it for reference); this rewrites the text from the datetime attribute as
// "YYYY-MM-DD HH:MM[:SS] <zone>" (unambiguous in every locale, like the server's), on load and after
// every htmx swap. A form's empty `tz` input gets the browser's IANA zone, so the server reads the
// form's date-times in the zone the page shows times in, and the form's [data-reader-zone] elements
// name it (a `tz` the server filled is the zone it read them in: left as it is).
// A file of its own: the Content-Security-Policy allows no inline script.
(function () {
  "use strict";

  const fields = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    hourCycle: "h23", timeZoneName: "short" };
  const formats = {
    minutes: new Intl.DateTimeFormat(undefined, fields),
    seconds: new Intl.DateTimeFormat(undefined, { ...fields, second: "2-digit" }),
  };

  function localText(format, moment) {
    const part = Object.fromEntries(format.formatToParts(moment).map(({ type, value }) => [type, value]));
    const time = `${part.hour}:${part.minute}` + (part.second ? `:${part.second}` : "");
    return `${part.year}-${part.month}-${part.day} ${time} ${part.timeZoneName}`;
  }

  function localize(root) {
    for (const element of root.querySelectorAll("time[datetime]")) {
      const moment = new Date(element.getAttribute("datetime"));
      if (Number.isNaN(moment.getTime())) continue;
      const format = element.hasAttribute("data-seconds") ? formats.seconds : formats.minutes;
      element.textContent = localText(format, moment);
    }
  }

  function fillReaderZone(root) {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (!zone) return;
    for (const input of root.querySelectorAll('input[name="tz"]')) {
      if (input.value) continue;
      input.value = zone;
      for (const name of (input.form || root).querySelectorAll("[data-reader-zone]")) name.textContent = zone;
    }
  }

  function refresh() {
    localize(document);
    fillReaderZone(document);
  }

  refresh();  // deferred: runs once the document is parsed
  // after every swap, the whole page: cheap, and right whatever was swapped (an outerHTML swap replaces its target)
  document.body.addEventListener("htmx:afterSettle", refresh);
})();
