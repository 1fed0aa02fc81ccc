// Sample viewer of the rsgpt4v report: draws one instruction's boxes over its image (SVG in the
// image's pixel coordinates, so boxes scale with the picture) beside its conversation.
// Data comes from data.js (window.RSGPT4V_REPORT); text is inserted with textContent only.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var PALETTE = ["#00c853", "#2979ff", "#d500f9", "#00b8d4", "#ffab00", "#ff6d00", "#64dd17", "#c51162"];
  var data = window.RSGPT4V_REPORT || { samples: [], iou: 0.5 };
  var all = data.samples;
  var shown = all.slice();
  var current = 0;

  function byId(id) { return document.getElementById(id); }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function colourOf(regionId, sample) {
    var index = sample.regions.findIndex(function (r) { return r.id === regionId; });
    return PALETTE[(index < 0 ? 0 : index) % PALETTE.length];
  }

  function rect(svg, bbox, stroke, width, dash, title) {
    var node = document.createElementNS(SVG, "rect");
    node.setAttribute("x", bbox[0]);
    node.setAttribute("y", bbox[1]);
    node.setAttribute("width", Math.max(bbox[2], 0.5));
    node.setAttribute("height", Math.max(bbox[3], 0.5));
    node.setAttribute("fill", "none");
    node.setAttribute("stroke", stroke);
    node.setAttribute("stroke-width", width);
    node.setAttribute("vector-effect", "non-scaling-stroke");
    if (dash) node.setAttribute("stroke-dasharray", "6 3");
    var tooltip = document.createElementNS(SVG, "title");
    tooltip.textContent = title;
    node.appendChild(tooltip);
    svg.appendChild(node);
    return node;
  }

  function outline(svg, points, stroke, width) {
    // an oriented region: the object's own outline inside its axis-aligned box
    var node = document.createElementNS(SVG, "polygon");
    node.setAttribute("points", points.map(function (p) { return p[0] + "," + p[1]; }).join(" "));
    node.setAttribute("fill", "none");
    node.setAttribute("stroke", stroke);
    node.setAttribute("stroke-width", width);
    node.setAttribute("vector-effect", "non-scaling-stroke");
    node.setAttribute("class", "region-outline");
    svg.appendChild(node);
    return node;
  }

  function label(svg, x, y, text, colour, size) {
    var node = document.createElementNS(SVG, "text");
    node.setAttribute("x", x + size * 0.15);
    node.setAttribute("y", Math.max(y - size * 0.2, size));
    node.setAttribute("fill", colour);
    node.setAttribute("font-size", size);
    node.setAttribute("font-weight", "bold");
    node.setAttribute("paint-order", "stroke");
    node.setAttribute("stroke", "#000");
    node.setAttribute("stroke-width", size * 0.12);
    node.textContent = text;
    svg.appendChild(node);
  }

  function drawBoxes(sample) {
    var width = sample.image_size[0], height = sample.image_size[1];
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("class", "boxes");
    var size = Math.max(width, height) / 40;
    var regionIds = {};
    sample.regions.forEach(function (r) { regionIds[r.id] = true; });
    if (byId("show-labels").checked) {
      sample.objects.forEach(function (o) {
        if (!regionIds[String(o.id)]) {
          rect(svg, o.bbox, "rgba(255,255,255,0.75)", 1, false, o.category + " (object " + o.id + ")")
            .setAttribute("class", "label-box");
        }
      });
    }
    sample.regions.forEach(function (r) {
      var colour = colourOf(r.id, sample);
      rect(svg, r.bbox, colour, r.polygon ? 1 : 2.5, false, "<ref:" + r.id + "> " + (r.category || ""))
        .setAttribute("class", "region-box");
      if (r.polygon) outline(svg, r.polygon, colour, 2.5);
      label(svg, r.bbox[0], r.bbox[1], r.id, colour, size);
    });
    sample.text_boxes.forEach(function (t) {
      var ok = t.iou >= data.iou;
      rect(svg, t.bbox, ok ? "#ff9800" : "#e53935", 2.5, true,
        "text box (" + t.style + "), IoU " + t.iou + (t.object_id === null ? "" : " with object " + t.object_id))
        .setAttribute("class", "text-box");
    });
    return svg;
  }

  function drawImage(sample) {
    var canvas = byId("canvas");
    canvas.replaceChildren();
    if (sample.src) {
      var img = element("img");
      img.alt = sample.image;
      img.src = sample.src;
      canvas.appendChild(img);
    } else {
      var blank = document.createElementNS(SVG, "svg");
      blank.setAttribute("class", "blank");
      blank.setAttribute("viewBox", "0 0 " + sample.image_size[0] + " " + sample.image_size[1]);
      canvas.appendChild(blank);
    }
    canvas.appendChild(drawBoxes(sample));
    byId("caption").textContent = sample.image + " (" + sample.image_size.join(" x ") + " px)" +
      (sample.src ? "" : " — image not available, boxes on a blank canvas");
  }

  function withRefs(parent, text, sample) {
    var pattern = /<ref:(\d+)>/g, last = 0, match;
    while ((match = pattern.exec(text)) !== null) {
      parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      var chip = element("span", "ref", match[0]);
      chip.style.background = colourOf(match[1], sample);
      parent.appendChild(chip);
      last = pattern.lastIndex;
    }
    parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function drawConversation(sample) {
    byId("meta").textContent = [sample.id, sample.dataset + "/" + sample.split, "task " + sample.task,
      "generator " + sample.generator, sample.template].filter(Boolean).join(" · ");
    var rejections = byId("rejections");
    rejections.replaceChildren();
    sample.rejections.forEach(function (r) {
      var item = element("li");
      item.appendChild(element("code", "", r.code));
      item.appendChild(document.createTextNode(" " + r.message));
      rejections.appendChild(item);
    });
    var messages = byId("messages");
    messages.replaceChildren();
    sample.messages.forEach(function (m) {
      var box = element("div", "message " + m.role);
      box.appendChild(element("span", "role", m.role));
      withRefs(box, m.content, sample);
      messages.appendChild(box);
    });
  }

  function show(index) {
    var items = byId("sample-list").children;
    if (!shown.length) {
      byId("position").textContent = "no samples";
      byId("canvas").replaceChildren();
      byId("messages").replaceChildren();
      byId("rejections").replaceChildren();
      byId("meta").textContent = "";
      byId("caption").textContent = "";
      return;
    }
    current = (index + shown.length) % shown.length;
    for (var i = 0; i < items.length; i++) items[i].classList.toggle("current", i === current);
    var sample = shown[current];
    byId("position").textContent = (current + 1) + " / " + shown.length;
    drawImage(sample);
    drawConversation(sample);
  }

  function matches(sample, mode) {
    if (mode === "all") return true;
    if (mode === "rejected" || mode === "kept") {
      return (mode === "rejected") === (sample.rejections.length > 0);
    }
    var kind = mode.slice(0, mode.indexOf(":")), value = mode.slice(mode.indexOf(":") + 1);
    if (kind === "task") return sample.task === value;
    return sample.rejections.some(function (r) { return r.code === value; });
  }

  function addFilters() {
    var select = byId("filter"), seen = {};
    all.forEach(function (s) {
      s.rejections.forEach(function (r) { seen["reason:" + r.code] = "reason " + r.code; });
    });
    all.forEach(function (s) { seen["task:" + s.task] = "task " + s.task; });
    Object.keys(seen).sort().forEach(function (value) {
      var option = element("option", "", seen[value]);
      option.value = value;
      select.appendChild(option);
    });
  }

  function list() {
    var mode = byId("filter").value;
    shown = all.filter(function (s) { return matches(s, mode); });
    var ol = byId("sample-list");
    ol.replaceChildren();
    shown.forEach(function (s, i) {
      var item = element("li", s.rejections.length ? "rejected" : "kept", s.id);
      item.title = s.rejections.map(function (r) { return r.code; }).join(", ") || "kept";
      item.addEventListener("click", function () { show(i); });
      ol.appendChild(item);
    });
    show(0);
  }

  byId("prev").addEventListener("click", function () { show(current - 1); });
  byId("next").addEventListener("click", function () { show(current + 1); });
  byId("filter").addEventListener("change", list);
  byId("show-labels").addEventListener("change", function () { show(current); });
  document.addEventListener("keydown", function (event) {
    if (event.key === "ArrowLeft") show(current - 1);
    if (event.key === "ArrowRight") show(current + 1);
  });
  addFilters();
  list();
})();
