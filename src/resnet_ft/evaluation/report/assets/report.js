// resnet-ft report: the confusion-matrix gallery and sortable tables. No libraries.
"use strict";

const DATA = JSON.parse(document.getElementById("report-data").textContent);

function element(tag, attributes, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  for (const child of children || []) {
    node.append(child);
  }
  return node;
}

function thumbnail(image) {
  const picture = image.s
    ? element("img", { src: image.s, alt: image.n })
    : element("div", { class: "noimg" }, ["unreadable"]);
  const caption = element("figcaption", { title: image.f }, [
    element("span", { class: "name" }, [image.n]),
    element("span", { class: "prob" }, ["p(" + DATA.labels[image.p] + ") " + image.q.toFixed(3)]),
  ]);
  return element("figure", { class: "thumb", "data-file": image.f }, [picture, caption]);
}

function showCell(truth, predicted) {
  const gallery = document.getElementById("gallery");
  const images = DATA.images
    .filter((image) => image.t === truth && image.p === predicted)
    .sort((a, b) => b.q - a.q);
  const verdict = truth === predicted ? "right" : "wrong";
  const title = element("h3", {}, [
    "true " + DATA.labels[truth] + " → predicted " + DATA.labels[predicted] + " ",
    element("span", { class: "count" }, ["· " + images.length + " image" +
      (images.length === 1 ? "" : "s") + " (" + verdict + "), most confident first"]),
  ]);
  gallery.replaceChildren(title, element("div", { class: "grid" }, images.map(thumbnail)));
  gallery.dataset.true = String(truth);
  gallery.dataset.pred = String(predicted);
  for (const link of document.querySelectorAll("a.cell")) {
    const selected = Number(link.dataset.true) === truth && Number(link.dataset.pred) === predicted;
    link.classList.toggle("selected", selected);
  }
}

function route() {
  const match = /^#cell-(\d+)-(\d+)$/.exec(window.location.hash);
  if (match) showCell(Number(match[1]), Number(match[2]));
}

function biggestMistake() {
  let best = null;
  for (const link of document.querySelectorAll("a.cell")) {
    if (link.dataset.true === link.dataset.pred) continue;
    if (!best || Number(link.textContent) > Number(best.textContent)) best = link;
  }
  return best;
}

function sortBy(table, header) {
  const index = Array.from(header.parentNode.children).indexOf(header);
  const numeric = header.dataset.sort === "num";
  const ascending = header.getAttribute("aria-sort") !== "ascending";
  for (const other of header.parentNode.children) other.removeAttribute("aria-sort");
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const key = (row) => row.cells[index].dataset.value;
  rows.sort((a, b) => {
    const order = numeric ? Number(key(a)) - Number(key(b)) : key(a).localeCompare(key(b));
    return ascending ? order : -order;
  });
  body.append(...rows);
}

for (const table of document.querySelectorAll("table.sortable")) {
  for (const header of table.tHead.rows[0].cells) {
    header.addEventListener("click", () => sortBy(table, header));
  }
}
window.addEventListener("hashchange", route);
if (/^#cell-/.test(window.location.hash)) {
  route();
} else {
  const first = biggestMistake();
  if (first) showCell(Number(first.dataset.true), Number(first.dataset.pred));
}
