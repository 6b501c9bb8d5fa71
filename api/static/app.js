// StyleStream search page: plain JavaScript, no build step.
"use strict";

const $ = (sel) => document.querySelector(sel);
const form = $("#filters");
// {kind: "image", file} | {kind: "product", id} | {kind: "text", words}
// | {kind: "modify", id, words}: like that product, but changed by the words
let lastQuery = null;

function filterBody(params) {
  // The JSON body of a text search from the same form fields.
  const body = { filters: { attributes: [] } };
  for (const [key, value] of params) {
    if (key === "attributes") body.filters.attributes.push(value);
    else if (key === "k") body.k = Number(value);
    else if (key === "explain") body.explain = true;
    else if (key === "min_price" || key === "max_price") body.filters[key] = Number(value);
    else body.filters[key] = value;
  }
  return body;
}

function filterParams() {
  // [key, value] pairs: attribute checkboxes repeat the "attributes" key.
  const out = [];
  for (const [key, value] of new FormData(form).entries()) {
    if (value === "" || value === null) continue;
    out.push([key, key === "explain" ? "true" : value]);
  }
  return out;
}

function showError(message) {
  const el = $("#error");
  el.textContent = message;
  el.hidden = !message;
}

async function call(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = body.error ? body.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return body;
}

function money(price, currency) {
  if (price === null || price === undefined) return "";
  return `${Number(price).toFixed(2)} ${currency || ""}`.trim();
}

function render(body, label) {
  const grid = $("#results");
  grid.replaceChildren();
  for (const item of body.results) {
    const card = document.createElement("article");
    card.className = "card";
    card.dataset.testid = "result";
    card.dataset.productId = item.product_id;
    card.dataset.category = item.category || "";
    card.title = item.title || item.product_id;
    const img = document.createElement("img");
    img.src = item.thumbnail_url;
    img.alt = item.title || item.product_id;
    img.loading = "lazy";
    const category = document.createElement("div");
    category.className = "category";
    category.textContent = item.category || "—";
    const meta = document.createElement("div");
    meta.className = "meta";
    const price = document.createElement("span");
    price.textContent = money(item.price, item.currency);
    const score = document.createElement("span");
    score.textContent = `score ${item.score.toFixed(3)}`;
    meta.append(price, score);
    const tags = document.createElement("div");
    tags.className = "tags";
    tags.dataset.testid = "tags";
    const shown = (item.attributes || []).filter(
      (k) => !k.startsWith("category.") && !k.startsWith("department."));
    tags.textContent = shown.map((k) => k.split(".")[1]).join(" · ");
    card.dataset.attributes = (item.attributes || []).join(" ");
    card.append(img, category, meta, tags);
    if (item.components) {
      const c = item.components;
      const why = document.createElement("div");
      why.className = "why";
      why.dataset.testid = "why";
      why.textContent = `visual ${c.visual.toFixed(3)} · colour ${c.colour.toFixed(3)} · attributes ${c.attributes.toFixed(3)}`;
      card.append(why);
    }
    if (item.text) {
      const why = document.createElement("div");
      why.className = "why";
      why.dataset.testid = "why";
      const parts = item.text.terms.map((t) => `${t.term} ${t.match.toFixed(3)}`);
      why.textContent = `words ${item.text.lexical.toFixed(3)} · ${parts.join(" · ")}`;
      card.append(why);
    }
    if (item.modify) {
      const why = document.createElement("div");
      why.className = "why";
      why.dataset.testid = "why";
      why.textContent = `shape ${item.modify.embedding.toFixed(3)} · attributes and colours ${item.modify.profile.toFixed(3)}`;
      card.append(why);
    }
    card.append(butForm(item.product_id), lookButton(item.product_id));
    card.addEventListener("click", () => search({ kind: "product", id: item.product_id }));
    grid.append(card);
  }
  $("#status").textContent =
    `${body.results.length} results ${label} in ${body.took_ms.toFixed(0)} ms (model ${body.model_version})`;
}

function butForm(productId) {
  // "Like this, but…": words that change this result (POST /v1/search/modify).
  const but = document.createElement("form");
  but.className = "but";
  but.dataset.testid = "but";
  const input = document.createElement("input");
  input.type = "text";
  input.maxLength = 200;
  input.placeholder = "like this, but…";
  input.setAttribute("aria-label", `Like ${productId}, but…`);
  input.dataset.testid = "but-text";
  const go = document.createElement("button");
  go.type = "submit";
  go.textContent = "Go";
  go.dataset.testid = "but-submit";
  but.append(input, go);
  but.addEventListener("click", (e) => e.stopPropagation());  // not a click on the card
  but.addEventListener("submit", (e) => {
    e.preventDefault();
    const words = input.value.trim();
    if (words) search({ kind: "modify", id: productId, words });
  });
  return but;
}

function lookButton(productId) {
  // "Complete the look": what goes with this product, per outfit role.
  const button = document.createElement("button");
  button.type = "button";
  button.className = "look-button";
  button.textContent = "Complete the look";
  button.dataset.testid = "look-button";
  button.addEventListener("click", (e) => {
    e.stopPropagation();  // not a click on the card
    showLook(productId);
  });
  return button;
}

function reportClick(look, role, item, position) {
  // A click on a look's item: an outfit signal for the miner (its role's impression). Sent
  // without waiting (keepalive: it outlives the page's next search).
  fetch("/v1/interactions", {
    method: "POST",
    keepalive: true,
    headers: { "Content-Type": "application/json", "X-Session-Id": look.session_id },
    body: JSON.stringify({
      impression_id: role.impression_id, product_id: item.product_id, position, type: "click",
    }),
  }).catch((err) => console.warn("click not recorded", err));
}

function lookItem(look, role, item, position) {
  const card = document.createElement("article");
  card.className = "look-item";
  card.dataset.testid = "look-item";
  card.dataset.productId = item.product_id;
  card.title = item.title || item.product_id;
  const img = document.createElement("img");
  img.src = item.thumbnail_url;
  img.alt = item.title || item.product_id;
  const caption = document.createElement("div");
  caption.className = "category";
  caption.textContent = item.category || "—";
  card.append(img, caption);
  if (item.look) {
    const why = document.createElement("div");
    why.className = "why";
    why.dataset.testid = "look-why";
    why.textContent = `goes with ${item.look.compatibility.toFixed(3)} · looks like ${item.look.similarity.toFixed(3)} · was #${item.look.retrieved_rank}`;
    card.append(why);
  }
  card.addEventListener("click", () => {
    reportClick(look, role, item, position);
    search({ kind: "product", id: item.product_id });
  });
  return card;
}

let lookGeneration = 0;  // only the latest look request may fill the panel

async function showLook(productId, quiet = false) {
  // ``quiet``: opened with a product search, so a failure (no model yet, nothing to complete)
  // hides the panel instead of showing an error
  const generation = ++lookGeneration;
  const panel = $("#look");
  const content = document.createDocumentFragment();
  const title = document.createElement("h2");
  title.textContent = `Complete the look: ${productId}`;
  content.append(title);
  try {
    const look = await call(
      `/v1/products/${encodeURIComponent(productId)}/complete-the-look?k=4&explain=true`);
    if (generation !== lookGeneration) return;
    title.textContent = `Complete the look: ${productId} (${look.product_role})`;
    for (const role of look.roles) {
      const row = document.createElement("section");
      row.className = "look-role";
      row.dataset.testid = "look-role";
      row.dataset.role = role.role;
      const name = document.createElement("h3");
      name.textContent = role.role;
      row.append(name);
      role.results.forEach((item, i) => row.append(lookItem(look, role, item, i + 1)));
      if (!role.results.length) row.append("nothing indexed in this role yet");
      content.append(row);
    }
  } catch (err) {
    if (generation !== lookGeneration) return;
    if (quiet) {
      panel.hidden = true;
      return;
    }
    const note = document.createElement("p");
    note.dataset.testid = "look-error";
    note.textContent = err.message;
    content.append(note);
  }
  panel.replaceChildren(content);
  panel.hidden = false;
}

async function search(query) {
  lastQuery = query;
  showError("");
  $("#status").textContent = "Searching…";
  const params = filterParams();
  try {
    let body;
    let label;
    if (query.kind === "image") {
      const data = new FormData();
      data.append("image", query.file);
      for (const [key, value] of params) data.append(key, value);
      body = await call("/v1/search/upload", { method: "POST", body: data });
      label = `for ${query.file.name}`;
    } else if (query.kind === "text") {
      const payload = { ...filterBody(params), query: query.words };  // "-word" excludes
      body = await call("/v1/search/text", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(payload),
      });
      label = `for “${query.words}”`;
    } else if (query.kind === "modify") {
      const payload = { ...filterBody(params), product_id: query.id, text: query.words };
      body = await call("/v1/search/modify", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(payload),
      });
      label = `like ${query.id}, but “${query.words}”`;
    } else {
      const qs = new URLSearchParams(params).toString();  // repeats "attributes"
      body = await call(`/v1/products/${encodeURIComponent(query.id)}/similar?${qs}`);
      label = `like ${query.id}`;
    }
    render(body, label);
    if (query.kind === "product") showLook(query.id, true);  // what goes with the product
    else $("#look").hidden = true;
  } catch (err) {
    $("#look").hidden = true;
    $("#status").textContent = "";
    $("#results").replaceChildren();
    showError(err.message);
  }
}

function useFile(file) {
  if (!file) return;
  const preview = $("#preview");
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  search({ kind: "image", file });
}

async function loadFacets() {
  try {
    const facets = await call("/v1/facets");
    const categories = form.elements.category;
    for (const c of facets.categories) categories.append(new Option(c, c));
    const colours = form.elements.colour;
    for (const c of facets.colours) colours.append(new Option(c, c));
    $("#status").textContent = `${facets.products} products indexed`;
  } catch (err) {
    showError(`Cannot load filters: ${err.message}`);
  }
}

async function loadAttributes() {
  // One fieldset per group that any product carries: any-of within a group, all groups.
  try {
    const taxonomy = await call("/v1/attributes");
    const panel = $("#attributes");
    for (const group of taxonomy.groups) {
      const used = group.attributes.filter((a) => a.products > 0);
      if (!used.length || group.key === "category") continue;
      const set = document.createElement("fieldset");
      set.dataset.group = group.key;
      const legend = document.createElement("legend");
      legend.textContent = group.name;
      set.append(legend);
      for (const a of used) {
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.name = "attributes";
        box.value = a.key;
        box.dataset.testid = `attr-${a.key}`;
        label.title = a.description;
        label.append(box, ` ${a.name} (${a.products})`);
        set.append(label);
      }
      panel.append(set);
    }
  } catch (err) {
    showError(`Cannot load attributes: ${err.message}`);
  }
}

const drop = $("#drop");
$("#file").addEventListener("change", (e) => useFile(e.target.files[0]));
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  useFile(e.dataTransfer.files[0]);
});
form.addEventListener("change", () => { if (lastQuery) search(lastQuery); });
form.addEventListener("submit", (e) => e.preventDefault());
$("#text-search").addEventListener("submit", (e) => {
  e.preventDefault();
  const words = $("#text-query").value.trim();
  if (words) search({ kind: "text", words });
});
loadFacets();
loadAttributes();
