// The library's pages: every page reads and writes through the REST API, with the hub's XSRF token.
(function () {
  "use strict";
  const page = window.LIBRARY;
  const $ = (selector) => document.querySelector(selector);
  const text = (value) => document.createTextNode(value == null ? "" : String(value));

  function flash(message) {
    const box = $("#flash");
    box.textContent = message;
    box.classList.toggle("d-none", !message);
  }

  async function api(method, path, body) {
    const options = { method, credentials: "same-origin", headers: { "X-XSRFToken": page.xsrf } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(page.prefix + "api/" + path, options);
    const data = response.status === 204 ? null : await response.json();
    if (!response.ok) {
      const error = new Error(data && data.error ? data.error.message : response.statusText);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function row(cells, href) {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      td.appendChild(cell instanceof Node ? cell : text(cell));
      tr.appendChild(td);
    }
    if (href) tr.addEventListener("click", () => { window.location = href; });
    return tr;
  }

  function link(label, href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = label;
    return a;
  }

  function badge(status) {
    const span = document.createElement("span");
    span.className = "badge status-" + status;
    span.textContent = status;
    return span;
  }

  function listPage(kind, columns) {
    let current = 1;
    async function load() {
      const params = new URLSearchParams({ page: current, per_page: 20 });
      for (const [key, value] of new FormData($("#filters"))) if (value) params.set(key, value);
      try {
        const data = await api("GET", kind + "?" + params);
        const body = $("#items tbody");
        body.replaceChildren(...data.items.map((item) => {
          const href = page.prefix + kind + "/" + item.id;
          const [name, ...rest] = columns(item);
          return row([link(name, href), ...rest], href);
        }));
        const pages = Math.max(1, Math.ceil(data.total / data.per_page));
        $("#page-info").textContent = `page ${data.page} of ${pages} (${data.total})`;
        $("#prev").disabled = data.page <= 1;
        $("#next").disabled = data.page >= pages;
        flash("");
      } catch (e) { flash(e.message); }
    }
    $("#filters").addEventListener("submit", (event) => { event.preventDefault(); current = 1; load(); });
    $("#prev").addEventListener("click", () => { current -= 1; load(); });
    $("#next").addEventListener("click", () => { current += 1; load(); });
    load();
  }

  function field(label, value) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.className = "col-sm-3"; dd.className = "col-sm-9";
    dt.textContent = label;
    if (value instanceof Node) dd.replaceChildren(value);
    else dd.textContent = value === "" || value == null ? "-" : value;
    return [dt, dd];
  }

  // Names and values (hyperparameters) as a small table, "-" when there are none.
  function pairs(values) {
    const entries = Object.entries(values || {});
    if (!entries.length) return "-";
    const table = document.createElement("table");
    table.className = "table table-sm w-auto mb-0 pairs";
    const body = document.createElement("tbody");
    for (const [name, value] of entries) {
      const tr = row([name, value]);
      tr.firstChild.className = "font-monospace";
      body.appendChild(tr);
    }
    table.appendChild(body);
    return table;
  }

  function showItem(item, kind) {
    $("#title").textContent = `${item.name} ${item.version}`;
    const status = $("#status");
    status.className = "badge status-" + item.status;
    status.textContent = item.status;
    $("#progress").textContent = item.progress || "";
    const errors = item.errors || [];
    $("#errors").classList.toggle("d-none", errors.length === 0);
    $("#errors ul").replaceChildren(...errors.map((e) => {
      const li = document.createElement("li");
      li.className = "list-group-item list-group-item-danger";
      li.textContent = `${e.image ? e.image + ": " : ""}${e.code}: ${e.message}`;
      return li;
    }));
    const rows = [["Owner", item.owner], ["Visibility", item.visibility], ["Framework", item.framework],
                  ["Device", item.device], ["Description", item.description]];
    if (kind === "algorithms") {
      rows.push(["Purpose", `${item.purpose.first} / ${item.purpose.second}`],
                ["Transfer training", item.transfer_training ? "yes" : "no"]);
    } else {
      rows.push(["Image", item.image]);
      if (item.unavailable) rows.push(["On this host", item.unavailable]);
    }
    $("#fields").replaceChildren(...rows.flatMap(([label, value]) => field(label, value)));
    $("#images tbody").replaceChildren(...item.images.map((i) =>
      row([i.role, i.filename, (i.size / 1048576).toFixed(1) + " MiB", i.tag, badge(i.status)])));
    const may = mayChange(item);  // what the viewer may not do, or cannot do now, is not shown
    $("#online").hidden = !may || !["ready", "offline"].includes(item.status);
    $("#offline").hidden = !may || item.status !== "online";
    $("#delete").hidden = !may || ["online", "validating"].includes(item.status);
    if ($("#edit")) $("#edit").hidden = !may;
  }

  // An owner as a list shows it: the caller's own items say "mine".
  function owner(name) {
    if (name !== page.user) return name;
    const mine = document.createElement("span");
    mine.className = "badge bg-secondary mine";
    mine.textContent = "mine";
    return mine;
  }

  // Whether the caller may change *item* (the API decides; this only hides what it would refuse).
  const mayChange = (item) => page.admin || (item.owner === page.user && item.visibility !== "preset");

  // The basic-information form (_basics.html) for the item at *path*; *after* gets the saved item.
  function basicsForm(path, item, after) {
    const form = $("#basics-form");
    if (!form || !mayChange(item)) return;
    form.classList.remove("d-none");
    if (form.dataset.bound) return;  // filled once: a refresh never overwrites what is being typed
    form.dataset.bound = "1";
    $("#basics-description").value = item.description || "";
    $("#basics-visibility").value = item.visibility;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const saved = await api("PATCH", path, { description: $("#basics-description").value,
                                                 visibility: $("#basics-visibility").value });
        $("#basics-saved").classList.remove("d-none");
        flash("");
        after(saved);
      } catch (e) { flash(e.message); }
    });
  }

  function itemPage(kind) {
    const path = kind + "/" + page.item_id;
    let shownInterface = false;
    async function refresh() {
      try {
        const item = await api("GET", path);
        showItem(item, kind);
        basicsForm(path, item, (saved) => showItem({ ...item, ...saved }, kind));
        if (kind === "algorithms") {
          $("#edit").href = page.prefix + path + "/edit";
          if (item.train) window.AlgorithmParts.view($("#train"), item.train);
          else $("#train").textContent = "(no train image)";
          if (item.predict) window.AlgorithmParts.view($("#predict"), item.predict);
          const iface = item.predict && item.predict.interface;
          $("#predict-section").classList.toggle("d-none", !iface);
          if (iface && !shownInterface) { showInterface(iface); shownInterface = true; }
        }
        if (item.status === "validating") setTimeout(refresh, 1000);
      } catch (e) { flash(e.message); }
    }
    async function act(method, suffix) {
      try {
        await api(method, path + suffix);
        if (method === "DELETE") window.location = page.prefix + (kind === "algorithms" ? "" : "envs");
        else refresh();
      } catch (e) { flash(e.message); }
    }
    $("#online").addEventListener("click", () => act("POST", "/online"));
    $("#offline").addEventListener("click", () => act("POST", "/offline"));
    $("#delete").addEventListener("click", () => { if (confirm("Delete this version?")) act("DELETE", ""); });
    if (kind === "algorithms") {
      $("#online-test").addEventListener("submit", async (event) => {
        event.preventDefault();
        const params = {};
        for (const input of document.querySelectorAll("#test-fields input")) {
          const type = input.dataset.type;
          params[input.name] = type === "Integer" ? parseInt(input.value, 10)
            : type === "Float" ? parseFloat(input.value) : type === "Boolean" ? input.value === "true" : input.value;
        }
        $("#test-result").textContent = "calling...";
        try {
          const result = await api("POST", path + "/test", { params });
          $("#test-result").textContent = `HTTP ${result.status}\n` + JSON.stringify(result.response, null, 2);
        } catch (e) { $("#test-result").textContent = e.message; }
      });
    }
    refresh();
  }

  function showInterface(iface) {
    $("#interface tbody").replaceChildren(...iface.params.map((p) =>
      row([p.name, p.type, p.required ? "yes" : "no", p.description || ""])));
    $("#test-fields").replaceChildren(...iface.params.map((p) => {
      const wrap = document.createElement("div");
      wrap.className = "mb-2";
      const label = document.createElement("label");
      label.className = "form-label";
      label.textContent = `${iface.method} /${iface.name}: ${p.name}`;
      label.htmlFor = "test-" + p.name;
      const input = document.createElement("input");
      input.className = "form-control"; input.id = "test-" + p.name; input.name = p.name;
      input.dataset.type = p.type;
      input.value = p.test_value == null ? "" : p.test_value;
      wrap.append(label, input);
      return wrap;
    }));
  }

  // POST *body* to the API with the page's progress bar filling as it goes; resolves with the answer.
  function sendWithProgress(path, body, headers = {}) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", page.prefix + "api/" + path);
      xhr.setRequestHeader("X-XSRFToken", page.xsrf);
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      const bar = $("#upload-progress");
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        const percent = Math.round((100 * event.loaded) / event.total);
        bar.style.width = percent + "%";
        bar.textContent = percent + "%";
      });
      xhr.addEventListener("load", () => {
        let data = {};
        try { data = JSON.parse(xhr.responseText || "{}"); } catch (e) { data = {}; }
        if (xhr.status >= 400) reject(new Error(data.error ? data.error.message : xhr.statusText));
        else resolve(data);
      });
      xhr.addEventListener("error", () => reject(new Error("the upload was interrupted; nothing was kept")));
      xhr.send(body);
    });
  }

  function upload(path, files, onDone) {
    const form = new FormData();
    for (const [role, file] of files) form.append(role, file, file.name);
    sendWithProgress(path, form).then((data) => {
      $("#upload-progress").textContent = "100% uploaded, validating";
      setTimeout(() => onDone(data), 800);
    }, (e) => flash(e.message));
  }

  function value(id) { return $("#" + id).value; }

  function publishPage() {
    const project = new URLSearchParams(window.location.search).get("project");
    if (project) $("#project").value = project;
    $("#from-project").addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { project: value("project"), visibility: value("project-visibility") };
      if (value("project-image")) body.name = value("project-image");
      try {
        const item = await api("POST", "algorithms/from-project", body);
        window.location = page.prefix + "algorithms/" + item.id;
      } catch (e) { flash(e.message); }
    });
    $("#publish").addEventListener("submit", async (event) => {
      event.preventDefault();
      const files = ["train", "predict"].map((role) => [role, $("#" + role).files[0]]).filter(([, f]) => f);
      const pulls = ["train", "predict"].filter((role) => !$("#" + role).files[0] && value(role + "-reference"))
        .map((role) => [role, value(role + "-reference").trim()]);
      if (files.length === 0 && pulls.length === 0) {
        flash("choose a train or predict image tar, or name an image to pull"); return;
      }
      const body = { name: value("name"), version: value("version"), description: value("description"),
                     visibility: value("visibility"), device: value("device"),
                     purpose: { first: value("purpose_first"), second: value("purpose_second") } };
      if ($("#smoke") && !$("#smoke").checked) body.smoke = false;
      try {
        const item = await api("POST", "algorithms", body);
        const opened = () => { window.location = page.prefix + "algorithms/" + item.id; };
        const pulled = () => pullImages(item.id, pulls).then(opened, (e) => flash(e.message));
        if (files.length) upload(`algorithms/${item.id}/images`, files, pulled);
        else pulled();
      } catch (e) { flash(e.message); }
    });
  }

  // The algorithm once its validation has ended, its progress shown on the page's bar meanwhile.
  async function untilValidated(itemId) {
    const bar = $("#upload-progress");
    for (;;) {
      const item = await api("GET", "algorithms/" + itemId);
      if (item.status !== "validating") return item;
      bar.style.width = "100%";
      bar.textContent = `validating: ${item.progress}`;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  // One image at a time: an algorithm takes a new image once the one before it is validated.
  async function pullImages(itemId, pulls) {
    const bar = $("#upload-progress");
    for (const [role, reference] of pulls) {
      await untilValidated(itemId);
      bar.style.width = "100%";
      bar.textContent = `pulling the ${role} image ${reference}`;
      await api("POST", `algorithms/${itemId}/pull`, { reference, role });
    }
  }

  function editPage() {
    const path = "algorithms/" + page.item_id;
    api("GET", path).then((item) => {
      $("#title").textContent = `${item.name} ${item.version}`;
      $("#description").value = item.description;
      $("#visibility").value = item.visibility;
      $("#purpose_first").value = item.purpose.first;
      $("#purpose_second").value = item.purpose.second;
      $("#transfer_training").checked = item.transfer_training;
      parts.train = window.AlgorithmParts.editor($("#train"), "train", item.train);
      parts.predict = window.AlgorithmParts.editor($("#predict"), "predict", item.predict);
      if (item.was_online) {
        frozen = true;
        $("#frozen-note").textContent = "This version has been online: only its description and visibility can change.";
        for (const node of document.querySelectorAll("#purpose_first, #purpose_second, #transfer_training, " +
                                                     "#train input, #train select, #train textarea, #train button, " +
                                                     "#predict input, #predict select, #predict textarea, #predict button")) {
          node.disabled = true;
        }
      }
    }).catch((e) => flash(e.message));
    const parts = {};
    let frozen = false;
    $("#edit-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { description: value("description"), visibility: value("visibility") };
      if (!frozen) {
        body.purpose = { first: value("purpose_first"), second: value("purpose_second") };
        body.transfer_training = $("#transfer_training").checked;
        for (const kind of ["train", "predict"]) {
          const part = parts[kind] && parts[kind]();
          if (part) body[kind] = part;
        }
      }
      try { await api("PATCH", path, body); window.location = page.prefix + path; } catch (e) { flash(e.message); }
    });
  }

  function envNewPage() {
    $("#env-new").addEventListener("submit", async (event) => {
      event.preventDefault();
      const file = $("#env").files[0], reference = value("reference");
      if (!file && !reference) { flash("choose an image tar or give an image reference to pull"); return; }
      try {
        const env = await api("POST", "envs", { name: value("name"), version: value("version"),
          framework: value("framework"), device: value("device"), description: value("description"),
          visibility: value("visibility") });
        const done = () => { window.location = page.prefix + "envs/" + env.id; };
        if (file) upload(`envs/${env.id}/images`, [["env", file]], done);
        else { await api("POST", `envs/${env.id}/pull`, { reference }); done(); }
      } catch (e) { flash(e.message); }
    });
  }

  const algorithmColumns = (a) => [a.name, a.version, `${a.purpose.first}/${a.purpose.second}`, a.framework,
                                   a.device, owner(a.owner), a.visibility, badge(a.status)];
  function availability(env) {  // online, but not startable on this host: say why and how to fix it
    if (!env.unavailable) return badge(env.status);
    const cell = document.createElement("span");
    const label = badge("unavailable");
    label.textContent = "not available";
    const why = document.createElement("div");
    why.className = "small text-muted env-unavailable";
    why.textContent = env.unavailable;
    cell.append(label, why);
    return cell;
  }

  const envColumns = (e) => [e.name, e.version, e.framework, e.device, owner(e.owner), e.visibility, availability(e)];
  const views = {
    algorithms: () => listPage("algorithms", algorithmColumns), envs: () => listPage("envs", envColumns),
    algorithm: () => itemPage("algorithms"), env: () => itemPage("envs"),
    publish: publishPage, edit: editPage, env_new: envNewPage,
  };
  window.LibraryUI = { api, flash, row, link, badge, field, pairs, listPage, text, basicsForm, mayChange, owner,
                       upload, sendWithProgress, pullImages, untilValidated };
  if (views[page.view]) views[page.view]();
})();
