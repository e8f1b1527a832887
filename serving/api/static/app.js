// The analysts' page: asks /v1/model and /v1/analyze on the server that served it. URLs are relative, so the
// page also works behind a reverse proxy under a prefix. No framework, no build step, nothing from outside.

const KEY_STORAGE = "rasid-api-key"; // sessionStorage: the key lasts for this tab only, and never enters a URL
const UNCERTAIN = "uncertain"; // the label the server gives a prediction below abstain_below

const TASK_NAMES = { topic: "الموضوع", stance: "الموقف من الهدف", claim: "الموقف من الادعاء" };
const RULES = {
  "most-confident-non-neutral": "الفقرة الأوثق غير المحايدة؛ وإن كانت الفقرات كلها محايدة فالتسمية المحايدة بمتوسط احتمالها",
  "length-weighted-mean": "متوسط احتمالات الفقرات موزونًا بطول كل فقرة، ثم التسمية الأعلى",
  "learned: paragraph answers and article n-grams":
    "نموذج متعلَّم يجمع أجوبة الفقرات الأقرب إلى الادعاء مع نموذج سلاسل الحروف للمقالة كلها",
};
// Why a line was skipped, in Arabic (serving.documents.SKIP_REASONS); an unknown reason shows its code only.
const REASONS = {
  share: "أزرار مشاركة أو متابعة",
  copyright: "سطر حقوق النشر",
  cookies: "تنبيه ملفات الارتباط أو الخصوصية أو شروط الاستخدام",
  "see-also": "رابط «اقرأ أيضًا» أو عنوان روابط ذات صلة",
  tags: "سطر الوسوم",
  subscribe: "نموذج اشتراك أو تسجيل دخول",
  comments: "نموذج تعليق أو عدّاد تعليقات أو استطلاع",
  disclaimer: "إخلاء مسؤولية",
  site: "أزرار الموقع (طباعة، إعلان، الرئيسية) أو عدّاد مشاهدات",
  menu: "قائمة تنقّل",
  "furniture-run": "سطر طويل من عبارات أثاث الصفحة",
  links: "روابط أو وسوم أو حسابات في الغالب",
  "no-text": "أرقام ورموز في الغالب",
  "too-short": "أقصر من جملة",
  recurring: "سطر يتكرر في وثائق أخرى",
  boilerplate: "من أثاث الصفحة لا من الخبر",
};
const PALETTE = ["#cfe3f7", "#f9d9c4", "#d4eccd", "#eed5f0", "#f7efb9", "#cdeeea", "#f5cfd6", "#dcd9f5",
  "#e6e0cf", "#c9e7f0", "#ece1f7", "#dff0c8"];
const BAR_COLOURS = ["#2f7fb8", "#d0612c", "#4a9a3f", "#9b4fa8", "#b8952a", "#2c9a8f", "#c0455e", "#6a5fc0"];

const $ = (id) => document.getElementById(id);
let model = null; // the answer of /v1/model
let last = null; // {response, target, threshold}: the analysis on screen, for the downloads
let serverAbstains = true; // false once the server says it does not know abstain_below: the page marks instead
let pendingKey = null; // one key prompt, however many calls are waiting for it

class ApiError extends Error {
  constructor(status, sentence, detail = "", retryAfter = null, data = null) {
    super(sentence);
    Object.assign(this, { status, sentence, detail, retryAfter, data });
  }
}

// --- small helpers ------------------------------------------------------------------------------------------

// Elements are built from text nodes only, never from HTML strings: article text cannot inject markup.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

const percent = (score) => `${Math.round(score * 100)}%`;
const taskName = (task) => TASK_NAMES[task] || task;

function seconds(value) {
  const n = Math.max(1, parseInt(value, 10) || 1);
  if (n === 1) return "ثانية واحدة";
  if (n === 2) return "ثانيتين";
  return n <= 10 ? `${n} ثوانٍ` : `${n} ثانية`;
}

function taskInfo(task) {
  return model ? model.tasks.find((t) => t.name === task) : undefined;
}

function labelIndex(task, label) {
  const labels = taskInfo(task)?.labels;
  const known = labels ? labels.indexOf(label) : -1;
  if (known >= 0) return known;
  let hash = 0; // before /v1/model answers, a stable colour from the label itself
  for (const c of label) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return hash;
}

// The label to show: the server's, or when it abstained, the most probable one (shown with "uncertain").
function topLabel(prediction) {
  if (prediction.label !== UNCERTAIN) return prediction.label;
  return Object.entries(prediction.scores).reduce((a, b) => (b[1] > a[1] ? b : a))[0];
}

function isUncertain(prediction, threshold) {
  return prediction.label === UNCERTAIN || (threshold !== null && prediction.score < threshold);
}

function isPairTask(task) {
  const info = taskInfo(task);
  return info ? info.input === "pair" : task !== "topic";
}

// --- talking to the API ----------------------------------------------------------------------------------

// 503 means "still loading" (worth retrying) or "loading failed" (the detail says why; retrying will not help).
const loading = (response, data) => response.status === 503 && /loading/.test(data?.detail || "");

function sentence(response, data) {
  const detail = data && typeof data.detail === "string" ? data.detail : "";
  const wait = response.headers.get("Retry-After");
  switch (response.status) {
    case 413:
      return ["المقال أكبر مما يقبله الخادم في طلب واحد؛ اختصره أو قسّمه إلى أجزاء ثم أعد المحاولة.", detail];
    case 422:
      return ["لم يقبل الخادم الطلب، والسبب:", detail];
    case 429:
      return [`الخادم مشغول بطلبات أخرى؛ أعد المحاولة بعد ${seconds(wait)}.`, detail];
    case 503:
      return loading(response, data)
        ? [`النموذج ما زال يُحمَّل على الخادم؛ أعد المحاولة بعد ${seconds(wait)}.`, ""]
        : ["تعذّر على الخادم تحميل النموذج، فلا يمكنه التحليل الآن.", detail];
    case 504:
      return ["استغرق التحليل أطول من المهلة المسموح بها؛ جرّب مقالًا أقصر أو أعد المحاولة لاحقًا.", detail];
    default:
      return [`ردّ الخادم بخطأ (${response.status}).`, detail];
  }
}

async function call(path, body) {
  for (;;) {
    const key = sessionStorage.getItem(KEY_STORAGE);
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = { method: body === undefined ? "GET" : "POST", headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError(0, "تعذّر الوصول إلى الخادم؛ تحقّق من أنه يعمل ثم أعد المحاولة.");
    }
    if (response.status === 401) {
      sessionStorage.removeItem(KEY_STORAGE);
      await askForKey(key ? "رفض الخادم هذا المفتاح؛ أدخل مفتاح API الصحيح."
        : "هذا الخادم يطلب مفتاح API؛ أدخله مرة واحدة لهذه الجلسة.");
      continue;
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const [text, detail] = sentence(response, data);
      const error = new ApiError(response.status, text, detail, response.headers.get("Retry-After"), data);
      error.loading = loading(response, data);
      throw error;
    }
    return data;
  }
}

function askForKey(message) {
  if (!pendingKey) {
    pendingKey = new Promise((resolve) => {
      const form = $("key-form");
      $("key-message").textContent = message;
      form.hidden = false;
      $("api-key").focus();
      form.onsubmit = (event) => {
        event.preventDefault();
        const value = $("api-key").value.trim();
        if (!value) return;
        sessionStorage.setItem(KEY_STORAGE, value);
        $("api-key").value = "";
        form.hidden = true;
        pendingKey = null;
        resolve();
      };
    });
  }
  return pendingKey;
}

function showError(error, source = "") {
  const box = $("error");
  box.dataset.source = source; // "model": cleared once the model answers
  const detail = error.detail ? el("span", { class: "detail", dir: "auto" }, error.detail) : null;
  box.replaceChildren(error.sentence || String(error), detail);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").replaceChildren();
}

// --- the model panel -------------------------------------------------------------------------------------

async function loadModel() {
  try {
    model = await call("v1/model");
    renderModel(model);
    if ($("error").dataset.source === "model") clearError();
  } catch (error) {
    showError(error, "model");
    $("model-info").replaceChildren(el("p", { class: "muted" }, "لم يُعرف النموذج بعد."));
    if (error.loading) {
      setTimeout(loadModel, 1000 * Math.max(1, parseInt(error.retryAfter, 10) || 1));
    }
  }
}

function metricLine(metrics) {
  if (!metrics) return el("p", { class: "muted" }, "لا درجات تحقق مسجّلة.");
  const parts = [];
  if (typeof metrics.macro_f1 === "number") parts.push(`macro-F1 ${metrics.macro_f1.toFixed(3)}`);
  if (typeof metrics.accuracy === "number") parts.push(`accuracy ${metrics.accuracy.toFixed(3)}`);
  if (typeof metrics.ece === "number") parts.push(`ECE ${metrics.ece.toFixed(3)}`);
  if (typeof metrics.n === "number") parts.push(`n=${metrics.n}`);
  return el("p", {}, "التحقق: ", el("span", { class: "score", lang: "en" }, parts.join(" · ")));
}

function renderModel(info) {
  const facts = el("dl", {},
    el("dt", {}, "الأساس"), el("dd", { dir: "ltr" }, info.base_model),
    el("dt", {}, "التشغيل"), el("dd", { dir: "ltr" }, info.backend),
    el("dt", {}, "النافذة"), el("dd", {}, `${info.max_length} وحدة`),
    el("dt", {}, "الإصدار"), el("dd", { dir: "ltr" }, `rasid ${info.rasid_version}`),
    el("dt", {}, "دُرّب في"), el("dd", { dir: "ltr" }, info.created));
  const tasks = info.tasks.map((task) => el("div", { class: "task-info", "data-task": task.name },
    el("strong", {}, taskName(task.name)), " ", el("code", {}, task.name), " ",
    el("small", {}, task.input === "pair" ? "(هدف + نص)" : "(نص)"),
    el("div", {}, task.labels.map((label, i) =>
      el("span", { class: "chip", dir: "auto", style: `background:${PALETTE[i % PALETTE.length]}` }, label))),
    metricLine(info.metrics?.[task.name])));
  $("model-info").replaceChildren(facts, ...tasks);
}

// --- the analysis ------------------------------------------------------------------------------------------

function readThreshold() {
  const raw = $("abstain").value.trim();
  if (!raw) return null;
  const value = Number(raw);
  if (!(value > 0 && value <= 1)) {
    throw new ApiError(0, "عتبة عدم اليقين عدد أكبر من 0 ولا يتجاوز 1 (مثل 0.5)، أو اتركها فارغة.");
  }
  return value;
}

function unknownField(error, field) {
  const errors = error.data?.errors || [];
  return error.status === 422 && errors.some((e) => e.field === `body.${field}` && /not a known field/.test(e.message));
}

async function analyze(event) {
  event.preventDefault();
  clearError();
  const text = $("article").value;
  const target = $("target").value.trim() || null;
  let threshold;
  try {
    threshold = readThreshold();
    if (!text.trim()) throw new ApiError(0, "الصق نص مقال أو اختر ملفًا أولًا.");
  } catch (error) {
    showError(error);
    return;
  }
  const body = target ? { text, target } : { text };
  setBusy(true);
  try {
    let response;
    try {
      const withThreshold = serverAbstains && threshold !== null ? { ...body, abstain_below: threshold } : body;
      response = await call("v1/analyze", withThreshold);
    } catch (error) {
      if (!unknownField(error, "abstain_below")) throw error;
      serverAbstains = false; // an older server: ask without it and mark uncertain predictions here
      response = await call("v1/analyze", body);
    }
    last = { response, target, threshold };
    render(last);
  } catch (error) {
    showError(error);
  } finally {
    setBusy(false);
  }
}

function setBusy(busy) {
  $("analyze").disabled = busy;
  $("status").textContent = busy ? "جارٍ التحليل…" : "";
}

function uncertainBadge(prediction, threshold) {
  if (!isUncertain(prediction, threshold)) return null;
  const why = prediction.target_seen === false && !(threshold !== null && prediction.score < threshold)
    ? "لم يرَ النموذج هذا الهدف في التدريب" : "الدرجة أدنى من عتبة عدم اليقين";
  return el("span", { class: "badge", title: why }, "غير مؤكد");
}

function predictionLabel(task, prediction, threshold) {
  return [el("span", { class: "label", dir: "auto" }, topLabel(prediction)), uncertainBadge(prediction, threshold)];
}

function scoreBar(task, prediction, threshold) {
  const label = topLabel(prediction);
  const fill = el("span", { class: "fill" });
  fill.style.width = percent(prediction.score);
  fill.style.background = BAR_COLOURS[labelIndex(task, label) % BAR_COLOURS.length];
  const all = Object.entries(prediction.scores).map(([l, s]) => `${l}: ${percent(s)}`).join(" · ");
  return el("div", { class: "bar-row", "data-task": task, title: all },
    el("span", {}, taskName(task)),
    el("span", { class: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "1",
      "aria-valuenow": prediction.score.toFixed(3), "aria-label": `${taskName(task)}: ${label}` }, fill),
    el("span", {}, predictionLabel(task, prediction, threshold), " ",
      el("span", { class: "score" }, percent(prediction.score))));
}

function topicChip(task, prediction, threshold) {
  const label = topLabel(prediction);
  return el("span", { class: "topic", "data-task": task },
    el("span", { class: "chip", dir: "auto", style: `background:${PALETTE[labelIndex(task, label) % PALETTE.length]}` },
      label, " ", el("span", { class: "score" }, percent(prediction.score))),
    uncertainBadge(prediction, threshold));
}

function renderParagraph(paragraph, threshold) {
  const entries = Object.entries(paragraph.predictions);
  const single = entries.filter(([task]) => !isPairTask(task));
  const pairs = entries.filter(([task]) => isPairTask(task));
  const uncertain = entries.some(([, p]) => isUncertain(p, threshold));
  const item = el("li", { class: uncertain ? "paragraph uncertain" : "paragraph" },
    el("p", { class: "text", dir: "auto" }, paragraph.text),
    el("div", { class: "labels" }, single.map(([task, p]) => topicChip(task, p, threshold))),
    pairs.map(([task, p]) => scoreBar(task, p, threshold)));
  if (single.length) {
    const label = topLabel(single[0][1]);
    item.style.setProperty("--topic", PALETTE[labelIndex(single[0][0], label) % PALETTE.length]);
  }
  return item;
}

function renderVerdict(task, prediction, threshold) {
  const rule = prediction.rule;
  return el("div", { class: "verdict", "data-task": task },
    el("div", { class: "task" }, taskName(task), " ", el("code", {}, task)),
    el("div", {}, predictionLabel(task, prediction, threshold), " ",
      el("span", { class: "score" }, percent(prediction.score))),
    el("div", { class: "bar" }, (() => {
      const fill = el("span", { class: "fill" });
      fill.style.width = percent(prediction.score);
      fill.style.background = BAR_COLOURS[labelIndex(task, topLabel(prediction)) % BAR_COLOURS.length];
      return fill;
    })()),
    el("div", { class: "rule" }, "القاعدة: ", el("code", {}, rule), RULES[rule] ? ` — ${RULES[rule]}` : ""));
}

function render({ response, threshold }) {
  const verdicts = Object.entries(response.predictions).map(([task, p]) => renderVerdict(task, p, threshold));
  $("verdicts").replaceChildren(...(verdicts.length ? verdicts : [el("p", { class: "muted" }, "لا حكم.")]));

  const notices = [];
  if (response.empty) notices.push("لا فقرة صالحة للتحليل في النص: كل أسطره متروكة، فلا حكم عليه.");
  if (response.truncated) notices.push("بعض الفقرات أطول من نافذة النموذج، فقرأ النموذج أولها فقط.");
  if (response.skipped_tasks.length) {
    notices.push(`لم تُشغَّل ${response.skipped_tasks.map(taskName).join("، ")} لأنها تحتاج إلى هدف أو ادعاء.`);
  }
  const unseen = response.paragraphs.some((p) => Object.values(p.predictions).some((x) => x.target_seen === false));
  if (unseen) notices.push("لم يرَ النموذج هذا الهدف في التدريب، فموقفه منه أقل موثوقية.");
  if (threshold !== null && !serverAbstains) {
    notices.push("هذا الخادم لا يعرف عتبة عدم اليقين، فالصفحة هي التي وسمت ما دونها «غير مؤكد».");
  }
  $("notices").replaceChildren(...notices.map((n) => el("li", {}, n)));

  $("paragraphs").replaceChildren(...response.paragraphs.map((p) => renderParagraph(p, threshold)));
  $("skipped-summary").textContent = `أسطر متروكة (${response.skipped.length})`;
  $("skipped-list").replaceChildren(...response.skipped.map((s) => el("li", { class: "skipped-line" },
    el("span", { dir: "auto" }, s.text),
    el("span", { class: "reason" }, REASONS[s.reason] ? `— ${REASONS[s.reason]} ` : "— ", el("code", {}, s.reason)))));
  $("skipped").hidden = response.skipped.length === 0;
  $("result").hidden = false;
}

// --- files in and out --------------------------------------------------------------------------------------

// A .txt is the article. A .jsonl holds rows in rasid's data format: their `text` fields, in order, are the
// article's paragraphs, and a `target` shared by the rows fills the target field if it is empty.
async function readFile(file) {
  const content = await file.text();
  if (!/\.jsonl$/i.test(file.name)) {
    $("article").value = content;
    return;
  }
  const rows = [];
  content.split(/\r?\n/).forEach((line, index) => {
    if (!line.trim()) return;
    let row;
    try {
      row = JSON.parse(line);
    } catch {
      throw new ApiError(0, `السطر ${index + 1} من الملف ليس JSON صالحًا.`);
    }
    if (!row || typeof row.text !== "string") {
      throw new ApiError(0, `السطر ${index + 1} من الملف لا يحوي الحقل "text" نصًّا.`);
    }
    rows.push(row);
  });
  $("article").value = rows.map((row) => row.text.replace(/\s*\n\s*/g, " ")).join("\n");
  const targets = [...new Set(rows.map((row) => row.target).filter((t) => typeof t === "string" && t.trim()))];
  if (targets.length === 1 && !$("target").value.trim()) $("target").value = targets[0];
}

function download(name, type, content) {
  const url = URL.createObjectURL(new Blob([content], { type }));
  const link = el("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function csvCell(value) {
  let text = value === null || value === undefined ? "" : String(value);
  // A spreadsheet would run a cell starting with one of these as a formula.
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

// One row per (paragraph, task), the document verdicts first: the shape a spreadsheet pivots easily.
function toCsv({ response, threshold }) {
  const header = ["kind", "start", "end", "text", "task", "label", "score", "uncertain", "rule", "reason"];
  const rows = [header];
  const predictionRow = (kind, item, task, p) => [kind, item.start, item.end, item.text, task, topLabel(p),
    p.score.toFixed(4), isUncertain(p, threshold), p.rule || "", ""];
  for (const [task, p] of Object.entries(response.predictions)) rows.push(predictionRow("document", {}, task, p));
  for (const paragraph of response.paragraphs) {
    for (const [task, p] of Object.entries(paragraph.predictions)) rows.push(predictionRow("paragraph", paragraph, task, p));
  }
  for (const s of response.skipped) rows.push(["skipped", s.start, s.end, s.text, "", "", "", "", "", s.reason]);
  // The byte-order mark makes spreadsheet programs read the file as UTF-8 (Arabic otherwise shows as mojibake).
  return "\ufeff" + rows.map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

// --- wiring ----------------------------------------------------------------------------------------------

$("analyze-form").addEventListener("submit", analyze);
$("file").addEventListener("change", async (event) => {
  const [file] = event.target.files;
  if (!file) return;
  clearError();
  try {
    await readFile(file);
  } catch (error) {
    showError(error);
  }
});
$("download-json").addEventListener("click", () => {
  if (!last) return;
  const record = { ...last.response, request: { target: last.target, abstain_below: last.threshold } };
  download("rasid-analysis.json", "application/json", JSON.stringify(record, null, 2));
});
$("download-csv").addEventListener("click", () => {
  if (last) download("rasid-analysis.csv", "text/csv;charset=utf-8", toCsv(last));
});
loadModel();
