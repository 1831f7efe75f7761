// resnet-ft report: the data map's hover card and its click through to the gallery.
// Reads DATA (report.js) for each point's image; the points themselves are drawn by the page.
"use strict";

(function dataMap() {
  const plot = document.getElementById("map-plot");
  if (!plot) return;
  const tip = document.getElementById("map-tip");
  let pending = null; // the file to pick out in the gallery once its cell has opened

  function card(point) {
    const image = DATA.images[Number(point.dataset.i)];
    const picture = image.s
      ? element("img", { src: image.s, alt: image.n })
      : element("div", { class: "noimg" }, ["unreadable"]);
    const lines = [
      element("b", {}, [DATA.labels[image.t]]),
      image.t === image.p ? " ✓" : " → predicted " + DATA.labels[image.p],
      " · p " + image.q.toFixed(3),
    ];
    const notes = [];
    if (point.dataset.findings) notes.push("doctor: " + point.dataset.findings);
    if (point.classList.contains("rejected")) notes.push("rejected as unknown");
    tip.replaceChildren(picture, element("p", {}, lines),
      element("p", { class: "name" }, [image.n]),
      ...notes.map((note) => element("p", { class: "note" }, [note])));
    tip.dataset.file = image.f;
    const box = point.getBoundingClientRect();
    const frame = plot.parentNode.getBoundingClientRect();
    const left = box.left - frame.left + 14;
    tip.style.left = Math.min(left, frame.width - 190) + "px";
    tip.style.top = box.top - frame.top + 14 + "px";
    tip.hidden = false;
  }

  function pickOut() {
    if (pending === null) return;
    const file = pending;
    pending = null;
    for (const figure of document.querySelectorAll("#gallery figure")) {
      const hit = figure.dataset.file === file;
      figure.classList.toggle("focus", hit);
      if (hit) figure.scrollIntoView({ block: "center" });
    }
  }

  plot.addEventListener("mouseover", (event) => {
    const point = event.target.closest("circle.pt");
    if (point) card(point);
  });
  plot.addEventListener("mouseleave", () => { tip.hidden = true; });
  plot.addEventListener("click", (event) => {
    const point = event.target.closest("circle.pt");
    if (!point) return;
    const image = DATA.images[Number(point.dataset.i)];
    pending = image.f;
    const hash = "#cell-" + image.t + "-" + image.p;
    if (window.location.hash === hash) pickOut();
    else window.location.hash = hash; // report.js opens the cell, then pickOut runs
  });
  window.addEventListener("hashchange", pickOut);
})();
