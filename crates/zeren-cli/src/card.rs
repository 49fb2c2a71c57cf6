//! The model card: `report.html`, one self-contained page rendered from `report.json`.
//!
//! The sections follow the model-card structure of Mitchell et al. 2019 ("Model Cards for Model
//! Reporting"), as used by Google's Model Card Toolkit and Hugging Face: model details, intended
//! use, training and evaluation data, metrics, fairness, privacy, ethical considerations and
//! caveats. What a machine cannot know (owners, intended use, limitations) comes from the
//! `[card]` table of the training config, and the card states each field left empty.
//!
//! The card is rendered from the JSON text of the report, not from the in-memory report, so that
//! `zeren train` and `zeren report` give byte-identical pages from the same `report.json`. The
//! page has no scripts and loads nothing: styles are inline and charts are inline SVG.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::charts::{self, Axes, Bar, BarGroup, Point, Series};
use crate::report::SCHEMA_VERSION;

/// Facts about a model that people state in the `[card]` table of the training config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, expecting = "a [card] table of model-card fields")]
pub struct CardInfo {
    /// Name of the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version of the model, as its owners number it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A paragraph on what the model does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overview: Option<String>,
    /// People or teams answerable for the model, with a contact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// Licence under which the model may be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Papers, documents or sites about the model or its data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// Uses the model was trained and tested for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intended_uses: Vec<String>,
    /// Expected users of the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intended_users: Vec<String>,
    /// Uses the model must not be put to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub out_of_scope_uses: Vec<String>,
    /// Known limitations of the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limitations: Vec<String>,
    /// Ethical considerations: risks, harms, affected people, mitigations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ethical_considerations: Vec<String>,
}

/// A `report.json` that cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("report.json is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "report.json has schema_version {found}, but this zeren reads version {SCHEMA_VERSION}; render it with the zeren that wrote it"
    )]
    Schema { found: String },
    #[error("report.json has no '{0}'; it was not written by `zeren train` or it was cut short")]
    Missing(&'static str),
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
}

/// Sections every report has; their absence means the file is not a zeren report.
const REQUIRED: [(&str, &str); 7] = [
    ("/run/started_at", "run.started_at"),
    ("/data/train_source", "data.train_source"),
    ("/model/parameters", "model.parameters"),
    ("/training/history", "training.history"),
    ("/metrics/test/accuracy", "metrics.test.accuracy"),
    ("/pii/action", "pii.action"),
    ("/zeren_version", "zeren_version"),
];

/// Parses `report.json` text and checks that it is a zeren report of a readable version.
///
/// # Errors
///
/// Returns [`CardError`] for invalid JSON, another schema version, or a missing section.
pub fn parse_report(text: &str) -> Result<Value, CardError> {
    let report: Value = serde_json::from_str(text)?;
    match report.get("schema_version").and_then(Value::as_u64) {
        Some(version) if version == u64::from(SCHEMA_VERSION) => {}
        Some(version) => return Err(CardError::Schema { found: version.to_string() }),
        None => return Err(CardError::Missing("schema_version")),
    }
    for (pointer, name) in REQUIRED {
        if report.pointer(pointer).is_none() {
            return Err(CardError::Missing(name));
        }
    }
    Ok(report)
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn at<'a>(value: &'a Value, pointer: &str) -> &'a Value {
    value.pointer(pointer).unwrap_or(&Value::Null)
}

/// Reads a number of the report; `null` (how report.json writes an undefined value) gives `None`.
fn num(value: &Value, pointer: &str) -> Option<f64> {
    at(value, pointer).as_f64()
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    at(value, pointer).as_str().unwrap_or("")
}

fn strings(value: &Value, pointer: &str) -> Vec<String> {
    at(value, pointer)
        .as_array()
        .map_or_else(Vec::new, |a| a.iter().filter_map(Value::as_str).map(String::from).collect())
}

/// Formats a value with four decimals, or `n/a` when it is undefined.
fn fixed(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        _ => "n/a".to_string(),
    }
}

/// Formats a count, which report.json may write as a float (weighted counts), without a trailing `.0`.
fn count(value: Option<f64>) -> String {
    match value {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => "n/a".to_string(),
    }
}

/// Formats a value with six significant digits.
fn significant(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.6e}").parse::<f64>().map_or_else(|_| v.to_string(), |r| r.to_string()),
        _ => "n/a".to_string(),
    }
}

fn percent(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{:.1}%", v * 100.0),
        _ => "n/a".to_string(),
    }
}

/// A page being written, with the charts drawn so far.
struct Page {
    html: String,
    chart_count: usize,
}

impl Page {
    fn line(&mut self, line: impl AsRef<str>) {
        self.html.push_str(line.as_ref());
        self.html.push('\n');
    }

    fn figure(&mut self, id: &str, title: &str, caption: &str, svg: &str) {
        self.chart_count += 1;
        let inlined = charts::inline(svg, id, title);
        self.line(format!(
            "<figure id=\"figure-{id}\"><div class=\"scroll\">{inlined}</div><figcaption>{}</figcaption></figure>",
            escape(caption)
        ));
    }

    /// Writes a field of the config's `[card]` table: its items, or a plain statement that it
    /// was left empty and how to fill it in.
    fn stated(&mut self, items: &[String], key: &str, what: &str) {
        match items {
            [] => self.line(format!(
                "<p class=\"missing\">Not stated: nobody said {what}. The <code>[card]</code> table of the \
                 training config has no <code>{key}</code>; add <code>{key} = [\"...\"]</code> there and train \
                 again.</p>"
            )),
            [one] => self.line(format!("<p>{}</p>", escape(one))),
            many => {
                self.line("<ul>");
                for item in many {
                    self.line(format!("<li>{}</li>", escape(item)));
                }
                self.line("</ul>");
            }
        }
    }

    fn table(&mut self, header: &[&str], rows: &[Vec<String>]) {
        self.line("<div class=\"scroll\"><table>");
        let cells: String = header.iter().map(|h| format!("<th scope=\"col\">{}</th>", escape(h))).collect();
        self.line(format!("<thead><tr>{cells}</tr></thead><tbody>"));
        for row in rows {
            let cells: String = row.iter().map(|c| format!("<td>{}</td>", escape(c))).collect();
            self.line(format!("<tr>{cells}</tr>"));
        }
        self.line("</tbody></table></div>");
    }
}

const STYLE: &str = r#"
:root { color-scheme: light; --ink: #1b1f24; --muted: #57606a; --line: #d0d7de; --accent: #0072b2; --warn: #9a3412; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif; color: var(--ink); background: #fff; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.7rem; margin: 0.5rem 0; }
h2 { font-size: 1.35rem; border-bottom: 1px solid var(--line); padding-bottom: 0.25rem; margin-top: 2rem; }
h3 { font-size: 1.1rem; margin-top: 1.5rem; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.9em; background: #f6f8fa; padding: 0 0.2em; border-radius: 3px; overflow-wrap: anywhere; }
pre { background: #f6f8fa; padding: 0.75rem; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere; }
.subtitle { color: var(--muted); margin-top: 0; }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(9.5rem, 1fr)); gap: 0.5rem; margin: 1rem 0; }
.tile { border: 1px solid var(--line); border-radius: 6px; padding: 0.5rem 0.75rem; }
.tile .label { display: block; color: var(--muted); font-size: 0.85rem; }
.tile .value { display: block; font-size: 1.2rem; font-weight: 600; }
nav ol { columns: 2 12rem; padding-left: 1.25rem; }
dl { display: grid; grid-template-columns: minmax(8rem, max-content) 1fr; gap: 0.25rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f6f8fa; }
figure { margin: 1rem 0; break-inside: avoid; }
figcaption { color: var(--muted); font-size: 0.9rem; }
svg.chart { width: 100%; height: auto; min-width: 32rem; max-width: 44rem; display: block; }
.missing { border-left: 4px solid var(--warn); padding-left: 0.75rem; color: var(--warn); }
.note { border-left: 4px solid var(--accent); padding-left: 0.75rem; }
footer { color: var(--muted); font-size: 0.85rem; border-top: 1px solid var(--line); margin-top: 2rem; padding-top: 0.5rem; }
@media print { body { font-size: 11pt; } svg.chart { min-width: 0; } main { max-width: none; } nav { display: none; } h2 { break-after: avoid; } a { color: inherit; } }
"#;

/// Renders the model card of a parsed `report.json` as one HTML page.
///
/// # Errors
///
/// Returns [`CardError::Chart`] when a chart cannot be drawn.
pub fn render_html(report: &Value) -> Result<String, CardError> {
    let mut page = Page { html: String::new(), chart_count: 0 };
    let dataset = at(report, "/data/dataset").as_str().map(String::from);
    let name =
        at(report, "/card/name").as_str().filter(|n| !n.trim().is_empty()).map(String::from).unwrap_or_else(|| {
            format!(
                "classifier of {}",
                dataset.clone().unwrap_or_else(|| text(report, "/data/train_source").to_string())
            )
        });

    page.line("<!DOCTYPE html>");
    page.line("<html lang=\"en\">");
    page.line("<head>");
    page.line("<meta charset=\"utf-8\">");
    page.line("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    page.line("<meta name=\"generator\" content=\"zeren\">");
    page.line(format!("<title>Model card: {}</title>", escape(&name)));
    page.line(format!("<style>{STYLE}</style>"));
    page.line("</head>");
    page.line("<body>");
    page.line("<main>");
    header(&mut page, report, &name);
    page.line(
        "<nav aria-label=\"Contents\"><ol><li><a href=\"#model-details\">Model details</a></li>\
         <li><a href=\"#intended-use\">Intended use</a></li><li><a href=\"#training-data\">Training data</a></li>\
         <li><a href=\"#evaluation-data\">Evaluation data</a></li><li><a href=\"#metrics\">Metrics</a></li>\
         <li><a href=\"#fairness\">Fairness</a></li><li><a href=\"#privacy\">Privacy</a></li>\
         <li><a href=\"#considerations\">Ethical considerations and caveats</a></li>\
         <li><a href=\"#reproducibility\">Reproducibility</a></li></ol></nav>",
    );
    model_details(&mut page, report, &name);
    intended_use(&mut page, report);
    training_data(&mut page, report)?;
    evaluation_data(&mut page, report);
    metrics(&mut page, report)?;
    fairness(&mut page, report)?;
    privacy(&mut page, report)?;
    considerations(&mut page, report);
    reproducibility(&mut page, report);
    page.line(format!(
        "<footer>Written by zeren {} from report.json. This page is self-contained: it loads no scripts, fonts, \
         styles or images from anywhere.</footer>",
        escape(text(report, "/zeren_version"))
    ));
    page.line("</main>");
    page.line("</body>");
    page.line("</html>");
    Ok(page.html)
}

fn header(page: &mut Page, report: &Value, name: &str) {
    page.line("<header>");
    page.line(format!("<h1>Model card: {}</h1>", escape(name)));
    let overview = at(report, "/card/overview").as_str().map(escape).unwrap_or_else(|| {
        format!(
            "A binary classifier that predicts whether <code>{}</code> is <code>{}</code>, trained with zeren on {}.",
            escape(text(report, "/data/target")),
            escape(text(report, "/data/positive_label")),
            escape(text(report, "/data/train_source"))
        )
    });
    page.line(format!("<p class=\"subtitle\">{overview}</p>"));

    // With several sensitive columns, their joint groups (`a & b`) count too: mitigation acts on them.
    let largest_gap = audits_with_joint(report)
        .filter_map(|(column, audit)| num(audit, "/demographic_parity_difference").map(|d| (column, d)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let privacy = match num(report, "/privacy/epsilon") {
        Some(epsilon) => format!("ε = {epsilon:.2}, δ = {}", text_number(report, "/privacy/delta")),
        None => "no formal guarantee".to_string(),
    };
    let mut tiles = vec![
        ("Test accuracy", fixed(num(report, "/metrics/test/accuracy"))),
        ("Test ROC AUC", fixed(num(report, "/metrics/test/roc_auc"))),
        ("Differential privacy", privacy),
    ];
    if let Some((column, gap)) = largest_gap {
        tiles.push(("Largest demographic parity difference", format!("{gap:.3} ({column})")));
    }
    tiles.push(("PII screen", pii_summary(report)));

    page.line("<div class=\"tiles\">");
    for (label, value) in tiles {
        page.line(format!(
            "<div class=\"tile\"><span class=\"label\">{}</span><span class=\"value\">{}</span></div>",
            escape(label),
            escape(&value)
        ));
    }
    page.line("</div>");
    page.line("</header>");
}

/// Formats a number as report.json wrote it, so that δ = 1e-5 does not turn into 0.0000.
fn text_number(report: &Value, pointer: &str) -> String {
    match at(report, pointer) {
        Value::Number(n) => n.to_string(),
        _ => "n/a".to_string(),
    }
}

fn pii_columns(report: &Value) -> impl Iterator<Item = &Value> {
    at(report, "/pii/columns").as_array().into_iter().flatten()
}

fn pii_summary(report: &Value) -> String {
    let flagged = pii_columns(report).count();
    if flagged == 0 {
        "no identifiers found".to_string()
    } else {
        format!("{flagged} column(s) flagged; action {}", text(report, "/pii/action"))
    }
}

fn model_details(page: &mut Page, report: &Value, name: &str) {
    page.line("<section id=\"model-details\">");
    page.line("<h2>Model details</h2>");
    let hidden: Vec<String> =
        at(report, "/model/hidden").as_array().map_or_else(Vec::new, |a| a.iter().map(|w| w.to_string()).collect());
    let architecture = if hidden.is_empty() {
        format!("logistic regression: {} inputs, 1 output logit", text_number(report, "/model/inputs"))
    } else {
        format!(
            "multilayer perceptron: {} inputs, hidden layers [{}] with {} activation, 1 output logit",
            text_number(report, "/model/inputs"),
            hidden.join(", "),
            text(report, "/model/activation")
        )
    };

    let stop = match text(report, "/training/stop_reason/reason") {
        "max_epochs" => "the epoch budget".to_string(),
        "loss_threshold" => "the training loss threshold".to_string(),
        "early_stopping" => "early stopping on the validation loss".to_string(),
        other => other.replace('_', " "),
    };
    let procedure = format!(
        "{} optimiser, learning rate {}, batch size {}, {} loss; {} epochs run, weights of epoch {} kept (stopped by {stop}); {:.1} s on {}",
        text(report, "/training/optimizer"),
        text_number(report, "/training/learning_rate"),
        text_number(report, "/training/batch_size"),
        text(report, "/training/loss"),
        text_number(report, "/training/epochs_run"),
        text_number(report, "/training/best_epoch"),
        num(report, "/training/seconds").unwrap_or(f64::NAN),
        text(report, "/run/device"),
    );

    page.line("<dl>");
    let mut row = |label: &str, value: String| {
        page.line(format!("<dt>{}</dt><dd>{}</dd>", escape(label), value));
    };
    row("Name", escape(name));
    row("Version", at(report, "/card/version").as_str().map_or_else(|| "not stated".to_string(), escape));
    row("Date", escape(text(report, "/run/started_at")));
    row("Architecture", format!("{} ({} parameters)", escape(&architecture), text_number(report, "/model/parameters")));
    row("Training procedure", escape(&procedure));
    row("License", at(report, "/card/license").as_str().map_or_else(|| "not stated".to_string(), escape));
    row("Software", format!("zeren {}", escape(text(report, "/zeren_version"))));
    page.line("</dl>");

    page.line("<h3>Owners</h3>");
    page.stated(&strings(report, "/card/owners"), "owners", "who answers for this model");
    let references = strings(report, "/card/references");
    if !references.is_empty() {
        page.line("<h3>References</h3>");
        page.stated(&references, "references", "which documents describe the model");
    }
    page.line("</section>");
}

fn intended_use(page: &mut Page, report: &Value) {
    page.line("<section id=\"intended-use\">");
    page.line("<h2>Intended use</h2>");
    page.line("<h3>Intended uses</h3>");
    page.stated(&strings(report, "/card/intended-uses"), "intended-uses", "what the model is for");
    page.line("<h3>Intended users</h3>");
    page.stated(&strings(report, "/card/intended-users"), "intended-users", "who the model is for");
    page.line("<h3>Out-of-scope uses</h3>");
    page.stated(
        &strings(report, "/card/out-of-scope-uses"),
        "out-of-scope-uses",
        "what the model must not be used for",
    );
    page.line("</section>");
}

fn training_data(page: &mut Page, report: &Value) -> Result<(), CardError> {
    page.line("<section id=\"training-data\">");
    page.line("<h2>Training data</h2>");
    let columns: Vec<String> = at(report, "/data/columns")
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} ({})", text(c, "/name"), text(c, "/kind")))
        .collect();
    let sensitive = strings(report, "/data/sensitive");
    page.line("<dl>");
    let rows = [
        ("Source", escape(text(report, "/data/train_source"))),
        (
            "Rows",
            format!(
                "{} for training, {} held out of them for validation (early stopping)",
                text_number(report, "/data/rows/train"),
                text_number(report, "/data/rows/validation")
            ),
        ),
        (
            "Target",
            format!(
                "<code>{}</code>: positive <code>{}</code>, negative <code>{}</code>; {} of training rows positive",
                escape(text(report, "/data/target")),
                escape(text(report, "/data/positive_label")),
                escape(text(report, "/data/negative_label")),
                percent(num(report, "/data/positive_rate/train"))
            ),
        ),
        (
            "Features",
            format!(
                "{} columns, {} model inputs after encoding: {}",
                columns.len(),
                text_number(report, "/data/inputs"),
                escape(&columns.join(", "))
            ),
        ),
        (
            "Sensitive columns",
            if sensitive.is_empty() {
                "none given, so no fairness audit was made".to_string()
            } else {
                format!(
                    "{} ({} model inputs)",
                    escape(&sensitive.join(", ")),
                    if at(report, "/data/sensitive_as_features").as_bool() == Some(true) { "used as" } else { "not" }
                )
            },
        ),
    ];
    for (label, value) in rows {
        page.line(format!("<dt>{label}</dt><dd>{value}</dd>"));
    }
    page.line("</dl>");
    let warnings = strings(report, "/data/warnings");
    if !warnings.is_empty() {
        page.line("<h3>Data warnings</h3><ul>");
        for warning in warnings {
            page.line(format!("<li>{}</li>", escape(&warning)));
        }
        page.line("</ul>");
    }

    page.line("<h3>Personal identifiers</h3>");
    let action = text(report, "/pii/action");
    let sampled = text_number(report, "/pii/rows_sampled");
    let flagged: Vec<(String, String, f64)> = pii_columns(report)
        .map(|c| {
            let entity =
                at(c, "/entity").as_str().map_or("quasi-identifier (unique per row)".to_string(), String::from);
            (text(c, "/column").to_string(), entity, num(c, "/share").unwrap_or(1.0))
        })
        .collect();
    if flagged.is_empty() {
        page.line(format!(
            "<p>The PII screen found no personal identifiers in the feature columns ({sampled} rows sampled per column).</p>"
        ));
    } else {
        page.line(format!(
            "<p>The PII screen sampled {sampled} rows per feature column and flagged {} column(s); the action taken was \
             <strong>{}</strong>.</p>",
            flagged.len(),
            escape(action)
        ));
        let rows: Vec<Vec<String>> = flagged
            .iter()
            .map(|(column, entity, share)| vec![column.clone(), entity.clone(), percent(Some(*share))])
            .collect();
        page.table(&["column", "entity type", "share of sampled values"], &rows);
        let bars: Vec<(String, f64)> =
            flagged.iter().map(|(column, entity, share)| (format!("{column}: {entity}"), *share)).collect();
        let svg = charts::share_bars("Personal identifiers by column", "share of sampled values", &bars)?;
        page.figure(
            "chart-pii",
            "Personal identifiers by column",
            "Share of the sampled values of each flagged feature column that hold the entity type.",
            &svg,
        );
    }
    page.line("</section>");
    Ok(())
}

fn evaluation_data(page: &mut Page, report: &Value) {
    page.line("<section id=\"evaluation-data\">");
    page.line("<h2>Evaluation data</h2>");
    page.line(format!(
        "<p>The test split: {} rows from {}; {} of them positive. The model never saw these rows in training or \
         early stopping.</p>",
        text_number(report, "/data/rows/test"),
        escape(text(report, "/data/test_source")),
        percent(num(report, "/data/positive_rate/test"))
    ));
    page.line("</section>");
}

fn metrics(page: &mut Page, report: &Value) -> Result<(), CardError> {
    page.line("<section id=\"metrics\">");
    page.line("<h2>Metrics</h2>");
    match text(report, "/mitigation/method") {
        "threshold" | "exponentiated-gradient" => page.line(
            "<p>The mitigated classifier is randomised (see Bias mitigation): the metrics below are those of one \
             seeded draw of its predictions. ROC AUC and log loss score its probability of a positive prediction, \
             which is often exactly 0 or 1, so its log loss is far above a calibrated model's.</p>",
        ),
        _ => page.line(format!(
            "<p>A row is predicted positive when its probability is at least {}.</p>",
            text_number(report, "/metrics/decision_threshold")
        )),
    }
    let mut rows = Vec::new();
    for split in ["train", "validation", "test"] {
        let e = at(report, &format!("/metrics/{split}"));
        if e.is_null() {
            continue;
        }
        rows.push(vec![
            split.to_string(),
            text_number(e, "/rows"),
            fixed(num(e, "/accuracy")),
            fixed(num(e, "/balanced_accuracy")),
            fixed(num(e, "/roc_auc")),
            fixed(num(e, "/log_loss")),
            fixed(num(e, "/precision")),
            fixed(num(e, "/recall")),
        ]);
    }
    page.table(
        &["split", "rows", "accuracy", "balanced accuracy", "ROC AUC", "log loss", "precision", "recall"],
        &rows,
    );
    let m = at(report, "/metrics/test/confusion_matrix");
    page.line(format!(
        "<p>Test confusion matrix: {} true positives, {} false positives, {} true negatives, {} false negatives.</p>",
        count(num(m, "/true_positives")),
        count(num(m, "/false_positives")),
        count(num(m, "/true_negatives")),
        count(num(m, "/false_negatives"))
    ));

    let history = at(report, "/training/history").as_array().cloned().unwrap_or_default();
    let epoch_points = |key: &str| -> Vec<(f64, f64)> {
        history.iter().filter_map(|r| Some((num(r, "/epoch")?, num(r, &format!("/{key}"))?))).collect()
    };
    let mut series = vec![Series { name: "training".into(), points: epoch_points("train_loss") }];
    let validation = epoch_points("validation_loss");
    if !validation.is_empty() {
        series.push(Series { name: "validation".into(), points: validation });
    }
    let loss = text(report, "/training/loss");
    let svg = charts::line_chart(
        "Loss per epoch",
        "epoch",
        &format!("{loss} loss"),
        &series,
        Axes::Counts { from_zero: false },
    )?;
    page.figure(
        "chart-loss",
        "Loss per epoch",
        &format!(
            "Training and validation loss after each epoch; the weights of epoch {} were kept.",
            text_number(report, "/training/best_epoch")
        ),
        &svg,
    );
    page.line("</section>");
    Ok(())
}

/// Audits of single sensitive columns (intersections are tabled, not charted), in report order.
fn sensitive_audits(report: &Value) -> impl Iterator<Item = (String, &Value)> {
    let sensitive = strings(report, "/data/sensitive");
    let fairness = at(report, "/fairness");
    sensitive.into_iter().filter_map(move |column| fairness.get(&column).map(|audit| (column, audit)))
}

/// ROC curves of the `index`-th sensitive column, by group, when the report has them.
fn roc_curves(report: &Value, index: usize) -> Option<Vec<Series>> {
    let column = strings(report, "/data/sensitive").into_iter().nth(index)?;
    let groups = at(report, "/roc_curves").get(&column)?.as_object()?;
    let series: Vec<Series> = groups
        .iter()
        .map(|(group, points)| Series {
            name: group.clone(),
            points: points
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    (!series.is_empty()).then_some(series)
}

fn fairness(page: &mut Page, report: &Value) -> Result<(), CardError> {
    page.line("<section id=\"fairness\">");
    page.line("<h2>Fairness</h2>");
    let audits: Vec<(String, &Value)> = sensitive_audits(report).collect();
    if audits.is_empty() {
        page.line(
            "<p class=\"missing\">No sensitive columns were given, so the model's behaviour across groups was not \
             measured. Train with <code>--sensitive COL</code> to audit it.</p>",
        );
    } else {
        page.line(
            "<p>Measured on the test split with Fairlearn's definitions: a difference is the largest gap between \
             groups, a ratio the smallest value over the largest; equalized odds takes the worse of the TPR and FPR \
             gaps. Intervals are percentile-bootstrap intervals; n/a marks an undefined value, such as a TPR in a \
             group without positives.</p>",
        );
    }
    for (index, (column, audit)) in audits.iter().enumerate() {
        page.line(format!("<h3>{}</h3>", escape(column)));
        let intervals = at(audit, "/confidence_intervals/groups");
        let mut rows = Vec::new();
        let mut bar_groups = Vec::new();
        for (group, m) in at(audit, "/groups").as_object().into_iter().flatten() {
            rows.push(vec![
                group.clone(),
                text_number(m, "/count"),
                fixed(num(m, "/selection_rate")),
                fixed(num(m, "/accuracy")),
                fixed(num(m, "/true_positive_rate")),
                fixed(num(m, "/false_positive_rate")),
                fixed(num(m, "/precision")),
            ]);
            let bar = |metric: &str| Bar {
                value: num(m, &format!("/{metric}")).unwrap_or(f64::NAN),
                interval: intervals
                    .get(group)
                    .and_then(|g| g.get(metric))
                    .and_then(|i| Some((i.get(0)?.as_f64()?, i.get(1)?.as_f64()?))),
            };
            bar_groups.push(BarGroup {
                name: group.clone(),
                bars: vec![bar("selection_rate"), bar("true_positive_rate"), bar("false_positive_rate")],
            });
        }
        page.table(&["group", "rows", "selection rate", "accuracy", "TPR", "FPR", "precision"], &rows);
        let title = format!("Rates by group: {column}");
        let svg = charts::grouped_bars(&title, &["selection rate", "TPR", "FPR"], &bar_groups)?;
        page.figure(
            &format!("chart-rates-{}", index + 1),
            &title,
            "Selection rate, true-positive rate and false-positive rate of each group on the test split, with \
             bootstrap confidence intervals as whiskers.",
            &svg,
        );
        if let Some(curves) = roc_curves(report, index) {
            let title = format!("ROC curve by group: {column}");
            let svg =
                charts::line_chart(&title, "false-positive rate", "true-positive rate", &curves, Axes::UnitSquare)?;
            page.figure(
                &format!("chart-roc-{}", index + 1),
                &title,
                "Receiver operating characteristic of each group on the test split; the diagonal is chance.",
                &svg,
            );
        }
        let between = |measure: &str| {
            let value = fixed(num(audit, &format!("/{measure}")));
            let interval = at(audit, &format!("/confidence_intervals/between_groups/{measure}"));
            match (interval.get(0).and_then(Value::as_f64), interval.get(1).and_then(Value::as_f64)) {
                (Some(low), Some(high)) => vec![measure.replace('_', " "), value, format!("[{low:.4}, {high:.4}]")],
                _ => vec![measure.replace('_', " "), value, "n/a".to_string()],
            }
        };
        let measures = [
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "equalized_odds_difference",
            "equalized_odds_ratio",
            "equal_opportunity_difference",
            "disparate_impact_ratio",
        ];
        let rows: Vec<Vec<String>> = measures.iter().map(|m| between(m)).collect();
        page.table(&["measure", "between groups", "interval"], &rows);
        if at(audit, "/disparate_impact_below_four_fifths").as_bool() == Some(true) {
            page.line(format!(
                "<p class=\"missing\">The disparate impact ratio {} is below 0.8: under the four-fifths rule this \
                 indicates adverse impact.</p>",
                fixed(num(audit, "/disparate_impact_ratio"))
            ));
        }
    }
    let intersections: Vec<&String> = at(report, "/fairness")
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .filter(|k| !audits.iter().any(|(c, _)| c == *k))
        .collect();
    for name in intersections {
        let audit = at(report, "/fairness").get(name.as_str()).unwrap_or(&Value::Null);
        page.line(format!("<h3>Intersection: {}</h3>", escape(name)));
        let rows: Vec<Vec<String>> = at(audit, "/groups")
            .as_object()
            .into_iter()
            .flatten()
            .map(|(group, m)| {
                vec![
                    group.clone(),
                    text_number(m, "/count"),
                    fixed(num(m, "/selection_rate")),
                    fixed(num(m, "/true_positive_rate")),
                    fixed(num(m, "/false_positive_rate")),
                ]
            })
            .collect();
        page.table(&["group", "rows", "selection rate", "TPR", "FPR"], &rows);
        page.line(format!(
            "<p>Demographic parity difference {}, equalized odds difference {}.</p>",
            fixed(num(audit, "/demographic_parity_difference")),
            fixed(num(audit, "/equalized_odds_difference"))
        ));
    }
    mitigation(page, report)?;
    page.line("</section>");
    Ok(())
}

fn mitigation(page: &mut Page, report: &Value) -> Result<(), CardError> {
    let Some(section) = report.pointer("/mitigation").filter(|m| !m.is_null()) else {
        return Ok(());
    };
    page.line("<h3>Bias mitigation</h3>");
    page.line(format!(
        "<p>Method <strong>{}</strong> targeting <strong>{}</strong>{}, measured on <code>{}</code>. The baseline is the \
         same model trained with the same seed without mitigation.</p>",
        escape(text(section, "/method")),
        escape(text(section, "/constraint")),
        num(section, "/tolerance").map_or(String::new(), |t| format!(" with tolerance {t}")),
        escape(text(section, "/measured_on"))
    ));

    let models = ["baseline", "mitigated"];
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            let s = at(section, &format!("/{m}"));
            vec![
                m.to_string(),
                fixed(num(s, "/accuracy")),
                fixed(num(s, "/roc_auc")),
                fixed(num(s, "/demographic_parity_difference")),
                fixed(num(s, "/equalized_odds_difference")),
                fixed(num(s, "/equal_opportunity_difference")),
            ]
        })
        .collect();
    page.table(
        &[
            "model",
            "accuracy",
            "ROC AUC",
            "demographic parity difference",
            "equalized odds difference",
            "equal opportunity difference",
        ],
        &rows,
    );

    // With several sensitive columns the mitigation acts on their joint groups, which does not
    // bound the disparity on each column alone, so each is shown.
    let by_groups = section.pointer("/by_groups").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    if by_groups.len() > 1 {
        let change = |entry: &Value, measure: &str| {
            format!(
                "{} → {}",
                fixed(num(entry, &format!("/baseline/{measure}"))),
                fixed(num(entry, &format!("/mitigated/{measure}")))
            )
        };
        let rows: Vec<Vec<String>> = by_groups
            .iter()
            .map(|entry| {
                vec![
                    text(entry, "/groups").to_string(),
                    change(entry, "demographic_parity_difference"),
                    change(entry, "equalized_odds_difference"),
                    change(entry, "equal_opportunity_difference"),
                ]
            })
            .collect();
        page.line("<p>Disparities by sensitive column and on the joint groups, baseline → mitigated:</p>");
        page.table(
            &["groups", "demographic parity difference", "equalized odds difference", "equal opportunity difference"],
            &rows,
        );
    }

    if let Some(groups) = section.pointer("/threshold/groups").and_then(Value::as_object) {
        let bound = |value: &Value, pointer: &str| match at(value, pointer) {
            Value::String(text) => text.clone(),
            other => fixed(other.as_f64()),
        };
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|(group, rule)| {
                let probabilities = at(rule, "/probabilities");
                vec![
                    group.clone(),
                    count(num(rule, "/fitted/rows")),
                    bound(rule, "/lower"),
                    bound(rule, "/upper"),
                    fixed(num(probabilities, "/1")),
                    fixed(num(rule, "/fitted/selection_rate")),
                ]
            })
            .collect();
        page.line(format!(
            "<p>Group thresholds, fitted on {} rows of the {} split: a row scoring above its group's upper threshold \
             is predicted positive, below the lower one negative, and between them positive with the probability \
             shown.</p>",
            count(num(section, "/threshold/fitted_rows")),
            escape(text(section, "/threshold/fitted_on"))
        ));
        page.table(
            &[
                "group",
                "fitted rows",
                "lower threshold",
                "upper threshold",
                "P(positive) between",
                "fitted selection rate",
            ],
            &rows,
        );
    }

    let disparity = match text(section, "/constraint") {
        "demographic-parity" => "demographic_parity_difference",
        "true-positive-rate-parity" => "equal_opportunity_difference",
        _ => "equalized_odds_difference",
    };
    let points: Vec<Point> = models
        .iter()
        .map(|m| {
            let s = at(section, &format!("/{m}"));
            Point {
                name: m.to_string(),
                x: num(s, &format!("/{disparity}")).unwrap_or(f64::NAN),
                y: num(s, "/accuracy").unwrap_or(f64::NAN),
            }
        })
        .collect();
    let x_label = disparity.replace('_', " ");
    let svg = charts::scatter("Accuracy against disparity", &x_label, "test accuracy", &points)?;
    page.figure(
        "chart-tradeoff",
        "Accuracy against disparity",
        "Test accuracy and the constrained disparity of the baseline and the mitigated model: the cost of fairness.",
        &svg,
    );
    Ok(())
}

fn privacy(page: &mut Page, report: &Value) -> Result<(), CardError> {
    page.line("<section id=\"privacy\">");
    page.line("<h2>Privacy</h2>");
    let section = at(report, "/privacy");
    if section.is_null() {
        page.line(
            "<p class=\"missing\">No formal privacy guarantee applies: the model was trained without differential \
             privacy, so it may reveal information about individual training rows. Train with \
             <code>--dp-epsilon EPS</code> for a proven guarantee.</p>",
        );
    } else {
        page.line(format!(
            "<p class=\"note\"><strong>ε = {}, δ = {}</strong> ({} accountant). {}</p>",
            fixed(num(section, "/epsilon")),
            text_number(section, "/delta"),
            escape(text(section, "/accountant")),
            escape(text(section, "/guarantee"))
        ));
        page.line("<dl>");
        let rows = [
            ("Noise multiplier", fixed(num(section, "/noise_multiplier"))),
            ("Max gradient norm", text_number(section, "/max_grad_norm")),
            ("Clipping", text(section, "/clipping").to_string()),
            (
                "Sample rate",
                format!(
                    "{} (expected batch size {})",
                    significant(num(section, "/sample_rate")),
                    text_number(section, "/expected_batch_size")
                ),
            ),
            (
                "Steps",
                format!("{} of {} planned", text_number(section, "/steps"), text_number(section, "/planned_steps")),
            ),
            ("Target ε", text_number(section, "/target_epsilon")),
            (
                "Noise source",
                if at(section, "/secure_noise").as_bool() == Some(true) {
                    "operating-system entropy (secure)".to_string()
                } else {
                    "seeded (reproducible, not secure)".to_string()
                },
            ),
        ];
        for (label, value) in rows {
            page.line(format!("<dt>{}</dt><dd>{}</dd>", escape(label), escape(&value)));
        }
        page.line("</dl>");
        let points: Vec<(f64, f64)> = at(section, "/epsilon_by_step")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
            .collect();
        if !points.is_empty() {
            let series = [Series { name: format!("ε at δ = {}", text_number(section, "/delta")), points }];
            let svg =
                charts::line_chart("Privacy spent", "noisy steps", "ε", &series, Axes::Counts { from_zero: true })?;
            page.figure(
                "chart-epsilon",
                "Privacy spent",
                "ε spent as training went on, from the same accountant as the final guarantee.",
                &svg,
            );
        }
    }
    let attack = at(report, "/membership_inference");
    if attack.is_null() {
        page.line("<p>No membership-inference attack was run.</p>");
    } else {
        let bound = match num(attack, "/epsilon_lower_bound") {
            Some(b) if b > 0.0 => format!(
                "From this attack, no training algorithm with ε below {b:.4} at δ {} could have produced the model \
                 (about 95% confidence): a lower bound found by experiment.",
                text_number(attack, "/delta")
            ),
            _ => "The attack did no better than chance at about 95% confidence. That is evidence, not a guarantee: \
                  a stronger attack might succeed."
                .to_string(),
        };
        page.line(format!(
            "<p>Membership inference ({}) on {} training and {} test rows: attack ROC AUC {}, advantage {} (TPR − FPR; \
             0 is chance). {}</p>",
            escape(text(attack, "/attack")),
            text_number(attack, "/members"),
            text_number(attack, "/non_members"),
            fixed(num(attack, "/auc")),
            fixed(num(attack, "/advantage")),
            escape(&bound)
        ));
    }
    page.line("</section>");
    Ok(())
}

fn considerations(page: &mut Page, report: &Value) {
    page.line("<section id=\"considerations\">");
    page.line("<h2>Ethical considerations and caveats</h2>");
    page.line("<h3>Ethical considerations</h3>");
    page.stated(
        &strings(report, "/card/ethical-considerations"),
        "ethical-considerations",
        "the ethical considerations",
    );
    page.line("<h3>Limitations</h3>");
    page.stated(&strings(report, "/card/limitations"), "limitations", "where the model is known to fall short");

    page.line("<h3>Caveats found in this run</h3>");
    let caveats = caveats(report);

    if caveats.is_empty() {
        page.line("<p>None found by the automatic checks (small groups, four-fifths rule, constant predictions, convergence, privacy settings, PII, data warnings).</p>");
    } else {
        page.line("<ul>");
        for caveat in caveats {
            page.line(format!("<li>{}</li>", escape(&caveat)));
        }
        page.line("</ul>");
    }
    page.line("</section>");
}

/// Lists what the automatic checks found in a run that a reader of its results must know: small
/// groups, the four-fifths rule, constant predictions, an unconverged reduction, small threshold
/// fits, privacy settings, PII allowed in and data warnings. The card and report.md both list them.
pub fn caveats(report: &Value) -> Vec<String> {
    let mut caveats = Vec::new();
    for (column, audit) in audits_with_joint(report) {
        for (group, m) in at(audit, "/groups").as_object().into_iter().flatten() {
            if let Some(count) = num(m, "/count").filter(|&c| c < 30.0) {
                caveats.push(format!(
                    "Group '{group}' of '{column}' has only {count} test rows: its rates are uncertain; see the intervals."
                ));
            }
        }
        if at(audit, "/disparate_impact_below_four_fifths").as_bool() == Some(true) {
            caveats.push(format!("The selection rates of '{column}' fail the four-fifths rule."));
        }
    }
    if at(report, "/privacy/secure_noise").as_bool() == Some(false) {
        caveats.push(
            "The DP noise was seeded: anyone who knows the seed can remove it, so the privacy guarantee does not hold \
             for a released model."
                .to_string(),
        );
    }
    caveats.extend(strings(report, "/privacy/warnings").into_iter().map(|w| format!("Privacy: {w}.")));
    let matrix = at(report, "/metrics/test/confusion_matrix");
    let positives = num(matrix, "/true_positives").unwrap_or(0.0) + num(matrix, "/false_positives").unwrap_or(0.0);
    let negatives = num(matrix, "/true_negatives").unwrap_or(0.0) + num(matrix, "/false_negatives").unwrap_or(0.0);
    if positives == 0.0 || negatives == 0.0 {
        caveats.push(format!(
            "The model predicts every test row {}: its disparities are zero only because it decides nothing.",
            if positives == 0.0 { "negative" } else { "positive" }
        ));
    }
    if at(report, "/mitigation/reduction/summary/converged").as_bool() == Some(false) {
        caveats.push(format!(
            "Exponentiated gradient stopped at its iteration limit with duality gap {} above its threshold: a more \
             accurate classifier meeting the constraint may exist.",
            fixed(num(report, "/mitigation/reduction/summary/gap"))
        ));
    }
    let small_fits: Vec<String> = at(report, "/mitigation/threshold/groups")
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, rule)| num(rule, "/fitted/rows").is_some_and(|rows| rows < 30.0))
        .map(|(group, rule)| format!("'{group}' ({} rows)", count(num(rule, "/fitted/rows"))))
        .collect();
    if !small_fits.is_empty() {
        caveats.push(format!(
            "The thresholds of {} were fitted on fewer than 30 rows each, so their rates on new data are uncertain.",
            small_fits.join(", ")
        ));
    }
    if matches!(text(report, "/mitigation/method"), "threshold" | "exponentiated-gradient") {
        caveats.push(
            "The membership-inference figures are those of the unmitigated network in model.json, whose scores the \
             mitigated classifier uses."
                .to_string(),
        );
    }
    if pii_columns(report).next().is_some() && text(report, "/pii/action") == "allow" {
        caveats.push("The model was trained on columns that hold personal identifiers (--pii allow).".to_string());
    }
    caveats.extend(strings(report, "/data/warnings"));
    caveats
}

/// Returns the audit of each sensitive column and, with several, the audit of their joint
/// groups (`a & b`), on which mitigation acts.
fn audits_with_joint(report: &Value) -> impl Iterator<Item = (String, &Value)> {
    let joint = strings(report, "/data/sensitive").join(" & ");
    let joint_audit = at(report, "/fairness").get(&joint).filter(|_| joint.contains(" & "));
    sensitive_audits(report).chain(joint_audit.map(move |audit| (joint, audit)))
}

fn reproducibility(page: &mut Page, report: &Value) {
    page.line("<section id=\"reproducibility\">");
    page.line("<h2>Reproducibility</h2>");
    let section = at(report, "/reproduce");
    page.line(format!(
        "<p>Re-run the training from this run directory with:</p><pre><code>{}</code></pre>\
         <p><code>config.toml</code> must have SHA-256 <code>{}</code>; the manifest lists the digests of the data \
         read and of every file written. Check them with <code>zeren verify RUN_DIR --public-key KEY.pub</code>.</p>",
        escape(text(section, "/command")),
        escape(text(section, "/config_sha256"))
    ));
    let expected = at(section, "/bit_identical").as_bool() == Some(true);
    page.line(format!(
        "<p class=\"note\"><strong>Bit-identical result expected: {}.</strong> {}</p>",
        if expected { "yes" } else { "no" },
        escape(text(section, "/reason"))
    ));
    page.line(format!(
        "<p>Original command: <code>{}</code>; seed {}.</p>",
        escape(&strings(report, "/run/command").join(" ")),
        text_number(report, "/run/seed")
    ));
    page.line("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(escape("<a href='x'>\"&\"</a>"), "&lt;a href=&#39;x&#39;&gt;&quot;&amp;&quot;&lt;/a&gt;");
        assert_eq!(escape("身份证号"), "身份证号");
    }

    #[test]
    fn parse_report_names_what_is_wrong() {
        let error = parse_report("{").unwrap_err().to_string();
        assert!(error.starts_with("report.json is not valid JSON"), "{error}");
        let error = parse_report(r#"{"schema_version": 99}"#).unwrap_err().to_string();
        assert!(error.contains("schema_version 99"), "{error}");
        let error = parse_report(r#"{"schema_version": 1, "run": {"started_at": "x"}}"#).unwrap_err().to_string();
        assert!(error.contains("'data.train_source'"), "{error}");
        assert!(parse_report(r#"[1, 2]"#).unwrap_err().to_string().contains("'schema_version'"));
    }

    #[test]
    fn card_info_rejects_unknown_keys() {
        let error = toml::from_str::<CardInfo>("owner = [\"x\"]").unwrap_err().to_string();
        assert!(error.contains("unknown field `owner`"), "{error}");
        let info: CardInfo =
            toml::from_str("owners = [\"张三 <zhang@example.org>\"]\nintended-uses = [\"research\"]").unwrap();
        assert_eq!(info.owners, vec!["张三 <zhang@example.org>"]);
        assert_eq!(info.intended_uses, vec!["research"]);
    }
}
