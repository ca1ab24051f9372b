// An algorithm's train and predict parts as people read and write them: the command and arguments one per
// line, the environment variables and the interface's parameters as tables, never JSON.
(function () {
  "use strict";
  const TYPES = ["String", "Integer", "Float", "Boolean"];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key in node && typeof value !== "string") node[key] = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    return node;
  }

  function input(name, value, attrs) {
    return el("input", { class: "form-control form-control-sm", "data-field": name, value: value == null ? "" : String(value),
                         ...(attrs || {}) });
  }

  function select(name, options, value) {
    const node = el("select", { class: "form-select form-select-sm", "data-field": name });
    for (const option of options) node.add(new Option(option, option, false, option === value));
    return node;
  }

  const lines = (text) => text.split("\n").map((line) => line.trim()).filter(Boolean);
  // *text* as *type*; text that is no number stays text, so that the API names the field it refuses
  const typed = (type, text) => {
    const value = type === "Integer" ? parseInt(text, 10) : type === "Float" ? parseFloat(text)
      : type === "Boolean" ? text === "true" : text;
    return typeof value === "number" && Number.isNaN(value) ? text : value;
  };

  // One editable table: *columns* are [label, (row) => cell]; *read* turns a row back into a value.
  function table(id, columns, rows, blank, read) {
    const body = el("tbody");
    const originals = new WeakMap();  // each row's value as it came, for what the columns do not show
    const add = (row) => {
      const tr = el("tr", {}, ...columns.map(([, cell]) => el("td", {}, cell(row))),
                    el("td", {}, el("button", { type: "button", class: "btn btn-sm btn-outline-danger remove-row" }, "remove")));
      tr.querySelector(".remove-row").addEventListener("click", () => tr.remove());
      originals.set(tr, row === blank ? null : row);
      body.append(tr);
    };
    rows.forEach(add);
    const adder = el("button", { type: "button", class: "btn btn-sm btn-outline-secondary", id: id + "-add" }, "add");
    adder.addEventListener("click", () => add(blank));
    const node = el("div", { id }, el("table", { class: "table table-sm" },
      el("thead", {}, el("tr", {}, ...columns.map(([label]) => el("th", {}, label)), el("th"))), body), adder);
    node.read = () => [...body.rows].map((tr) => read((field) => tr.querySelector(`[data-field="${field}"]`),
                                                       originals.get(tr)));
    return node;
  }

  // The editor of one part (*kind* train or predict) inside *container*; returns () => the part, or null.
  function editor(container, kind, part) {
    part = part || {};
    const envVars = Object.entries(part.env_vars || {}).map(([name, spec]) => ({ name, ...spec }));
    const command = el("textarea", { class: "form-control form-control-sm font-monospace", rows: 2, id: `${kind}-command` });
    command.value = (part.command || []).join("\n");
    const args = el("textarea", { class: "form-control form-control-sm font-monospace", rows: 2, id: `${kind}-args` });
    args.value = (part.args || []).join("\n");
    const vars = table(`${kind}-env`, [
      ["Name", (v) => input("name", v.name, { pattern: "[A-Z][A-Z0-9_]{0,63}" })],
      ["Type", (v) => select("type", TYPES, v.type || "String")],
      ["Default", (v) => input("default", v.default)],
      ["Range (min)", (v) => input("min", v.range ? v.range[0] : "", { type: "number", step: "any" })],
      ["Range (max)", (v) => input("max", v.range ? v.range[1] : "", { type: "number", step: "any" })],
      ["Description", (v) => input("description", v.description)],
    ], envVars, { type: "String" }, (field, original) => {
      // what the table does not show (choices, required) is kept as it was
      const { name: _, ...spec } = original || {};
      spec.type = field("type").value;
      spec.default = typed(spec.type, field("default").value);
      if (field("min").value !== "" && field("max").value !== "") spec.range = [Number(field("min").value), Number(field("max").value)];
      else delete spec.range;
      if (field("description").value) spec.description = field("description").value; else delete spec.description;
      return [field("name").value.trim(), spec];
    });
    const sections = [
      el("div", { class: "col-md-6" }, el("label", { class: "form-label", for: command.id }, "Command (one word a line)"), command),
      el("div", { class: "col-md-6" }, el("label", { class: "form-label", for: args.id }, "Arguments (one a line)"), args),
      el("div", { class: "col-12" }, el("h4", { class: "h6" }, "Environment variables"), vars),
    ];
    let readInterface = null;
    if (kind === "predict") {
      const iface = part.interface || { name: "predict", method: "POST", params: [] };
      const name = input("interface-name", iface.name, { id: "predict-interface-name", pattern: "[a-z_][a-z0-9_]{0,39}" });
      const method = select("interface-method", ["POST", "GET"], iface.method || "POST");
      method.id = "predict-interface-method";
      const params = table("predict-params", [
        ["Parameter", (p) => input("name", p.name)],
        ["Type", (p) => select("type", TYPES, p.type || "String")],
        ["Required", (p) => el("input", { type: "checkbox", class: "form-check-input", "data-field": "required", checked: !!p.required })],
        ["Test value", (p) => input("test_value", p.test_value)],
        ["Description", (p) => input("description", p.description)],
      ], iface.params || [], { type: "String", required: true }, (field, original) => {
        const param = { ...(original || {}), name: field("name").value.trim(), type: field("type").value,
                        required: field("required").checked };
        delete param.test_value;
        delete param.description;
        if (field("test_value").value !== "") param.test_value = typed(param.type, field("test_value").value);
        if (field("description").value) param.description = field("description").value;
        return param;
      });
      sections.push(el("div", { class: "col-12" }, el("h4", { class: "h6" }, "Interface"),
        el("div", { class: "row g-2 mb-2" },
          el("div", { class: "col-md-4" }, el("label", { class: "form-label", for: name.id }, "Name"), name),
          el("div", { class: "col-md-2" }, el("label", { class: "form-label", for: method.id }, "Method"), method)),
        params));
      readInterface = () => ({ ...iface, name: name.value.trim(), method: method.value, params: params.read() });
    }
    container.replaceChildren(el("div", { class: "row g-2" }, ...sections));
    return () => {
      const result = { ...part };
      const words = lines(command.value);
      if (words.length) result.command = words; else delete result.command;
      result.args = lines(args.value);
      result.env_vars = Object.fromEntries(vars.read().filter(([n]) => n));
      if (readInterface) result.interface = readInterface();
      return words.length || Object.keys(part).length ? result : null;
    };
  }

  // One part shown as tables (the algorithm's page).
  function view(container, part) {
    const rows = [["Command", (part.command || []).join(" ") || "(the image's own)"],
                  ["Arguments", (part.args || []).join(" ") || "-"], ["Device", part.device || "-"]];
    if (part.dataset_format) rows.push(["Dataset format", part.dataset_format]);
    const fields = el("dl", { class: "row" }, ...rows.flatMap(([label, value]) =>
      [el("dt", { class: "col-sm-3" }, label), el("dd", { class: "col-sm-9 font-monospace" }, value)]));
    const vars = Object.entries(part.env_vars || {});
    const envTable = el("table", { class: "table table-sm env-vars" },
      el("thead", {}, el("tr", {}, ...["Variable", "Type", "Default", "Range", "Description"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...vars.map(([name, spec]) => el("tr", {}, el("td", { class: "font-monospace" }, name),
        el("td", {}, spec.type || ""), el("td", {}, spec.default == null ? "" : String(spec.default)),
        el("td", {}, spec.range ? `${spec.range[0]} to ${spec.range[1]}` : (spec.choices || []).join(", ")),
        el("td", {}, spec.description || "")))));
    container.replaceChildren(fields, ...(vars.length ? [envTable] : []));
  }

  window.AlgorithmParts = { editor, view };
})();
