//! Opens the HTML report of a run in headless Chromium and checks that a
//! reader would see it as intended:
//!
//! 1. the page loads from disk (a `file://` URL) without console errors,
//!    uncaught exceptions, error log entries or failed resource loads;
//! 2. every `<img>` finished loading and decoded to a picture of non-zero
//!    width and height;
//! 3. a full-page screenshot is not blank (more than [`MIN_COLOURS`] distinct
//!    RGB colours);
//! 4. the screenshot is kept at `target/test-artifacts/report-screenshot.png`
//!    for a person to look at.
//!
//! A second test feeds the checker pages that are broken on purpose, to show
//! that each check can fail.
//!
//! The tests need a Chromium binary (`/usr/bin/chromium` from Debian's
//! `chromium` package, or the path in `PHYVAE_CHROMIUM`), so they are
//! ignored by default; `.ci/run` installs Chromium and runs them with
//! `cargo test -p phyvae-cli --test report_browser -- --ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::s;

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Log, Network, Page, Runtime};
use headless_chrome::{Browser, LaunchOptions};

/// A screenshot with at most this many distinct RGB colours counts as blank.
const MIN_COLOURS: usize = 64;

/// How long the page may take to load, and how long any one DevTools call
/// may take; CI runs on a slow two-core machine.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Browser window size in CSS pixels.
const WINDOW: (u32, u32) = (1400, 1000);

/// One `<img>` element as the browser saw it after the page loaded.
#[derive(Debug)]
struct ImageState {
    /// Position among the page's `<img>` elements.
    index: usize,
    /// The start of the `src` attribute, enough to tell images apart.
    src_start: String,
    /// The `alt` attribute.
    alt: String,
    natural_width: u64,
    natural_height: u64,
    complete: bool,
}

impl std::fmt::Display for ImageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<img> #{} alt={:?} src={:?}...: natural size {} x {}, complete {}",
            self.index,
            self.alt,
            self.src_start,
            self.natural_width,
            self.natural_height,
            self.complete
        )
    }
}

impl ImageState {
    fn is_ok(&self) -> bool {
        self.complete && self.natural_width > 0 && self.natural_height > 0
    }
}

/// What the browser made of one HTML page.
struct BrowserReport {
    /// Console errors, uncaught exceptions, error log entries and failed
    /// resource loads reported by the DevTools protocol, one line each.
    errors: Vec<String>,
    /// The same kinds of error as seen by hooks installed in the page before
    /// its own scripts run (`console.error`, `error` events including failed
    /// loads of elements, unhandled promise rejections). A second witness in
    /// case a newer Chromium sends an event this client cannot parse, which
    /// it would otherwise drop without a word.
    page_errors: Vec<String>,
    /// Every `<img>` of the page, in document order.
    images: Vec<ImageState>,
    /// The full-page screenshot, PNG-encoded, as written to disk.
    screenshot_png: Vec<u8>,
    /// Screenshot size in device pixels.
    screenshot_width: u32,
    screenshot_height: u32,
    /// Number of distinct RGB colours in the screenshot.
    distinct_colours: usize,
}

impl std::fmt::Debug for BrowserReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserReport")
            .field("errors", &self.errors)
            .field("page_errors", &self.page_errors)
            .field("images", &self.images)
            .field("screenshot_png_bytes", &self.screenshot_png.len())
            .field("screenshot_width", &self.screenshot_width)
            .field("screenshot_height", &self.screenshot_height)
            .field("distinct_colours", &self.distinct_colours)
            .finish()
    }
}

impl BrowserReport {
    fn broken_images(&self) -> Vec<&ImageState> {
        self.images.iter().filter(|i| !i.is_ok()).collect()
    }

    /// Every error line from both witnesses.
    fn all_errors(&self) -> Vec<String> {
        let page = self.page_errors.iter().map(|e| format!("in page: {e}"));
        self.errors.iter().cloned().chain(page).collect()
    }

    fn is_blank(&self) -> bool {
        self.distinct_colours <= MIN_COLOURS
    }
}

/// The Chromium binary: `PHYVAE_CHROMIUM` when set, else Debian's
/// `/usr/bin/chromium`, else whatever Chrome `headless_chrome` finds.
fn chromium_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PHYVAE_CHROMIUM") {
        return PathBuf::from(p);
    }
    let debian = PathBuf::from("/usr/bin/chromium");
    if debian.exists() {
        return debian;
    }
    headless_chrome::browser::default_executable().unwrap_or_else(|e| {
        panic!(
            "no Chromium found ({e}); install it (apt-get install chromium) or set PHYVAE_CHROMIUM"
        )
    })
}

/// Text of a console call's arguments, joined by spaces.
fn console_text(args: &[Runtime::RemoteObject]) -> String {
    args.iter()
        .map(|a| match (&a.value, &a.description) {
            (Some(serde_json::Value::String(s)), _) => s.clone(),
            (Some(v), _) => v.to_string(),
            (None, Some(d)) => d.clone(),
            (None, None) => format!("{:?}", a.Type),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most `n` characters of `s`, so that data URIs stay readable in messages.
fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

/// Records every error the page reports into `errors`.
fn listen_for_errors(errors: Arc<Mutex<Vec<String>>>) -> impl Fn(&Event) + Send + Sync {
    let urls: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
    move |event: &Event| {
        let line = match event {
            Event::RuntimeConsoleAPICalled(e)
                if e.params.Type == Runtime::ConsoleAPICalledEventTypeOption::Error =>
            {
                format!("console.error: {}", console_text(&e.params.args))
            }
            Event::RuntimeExceptionThrown(e) => {
                let d = &e.params.exception_details;
                let what = d
                    .exception
                    .as_ref()
                    .and_then(|x| x.description.clone())
                    .unwrap_or_else(|| d.text.clone());
                format!(
                    "uncaught exception at {}:{}:{}: {what}",
                    d.url.as_deref().unwrap_or("?"),
                    d.line_number + 1,
                    d.column_number + 1
                )
            }
            Event::LogEntryAdded(e) if e.params.entry.level == Log::LogEntryLevel::Error => {
                let entry = &e.params.entry;
                format!(
                    "log error ({:?}): {} {}",
                    entry.source,
                    entry.text,
                    shorten(entry.url.as_deref().unwrap_or(""), 120)
                )
            }
            Event::NetworkRequestWillBeSent(e) => {
                urls.lock().unwrap().insert(
                    e.params.request_id.clone(),
                    shorten(&e.params.request.url, 120),
                );
                return;
            }
            Event::NetworkLoadingFailed(e) => {
                let url = urls
                    .lock()
                    .unwrap()
                    .get(&e.params.request_id)
                    .cloned()
                    .unwrap_or_default();
                format!(
                    "failed load ({:?}): {} {url}",
                    e.params.Type, e.params.error_text
                )
            }
            _ => return,
        };
        errors.lock().unwrap().push(line);
    }
}

/// Runs before the page's own scripts and records, in `window.__pageErrors`,
/// every `console.error`, uncaught exception, unhandled rejection and element
/// that failed to load.
const HOOKS_JS: &str = r"
window.__pageErrors = [];
(() => {
  const record = m => window.__pageErrors.push(String(m));
  const consoleError = console.error.bind(console);
  console.error = (...args) => { record('console.error: ' + args.join(' ')); consoleError(...args); };
  window.addEventListener('error', e => {
    if (e.target && e.target !== window && e.target.tagName) {
      const t = e.target;
      record('failed to load <' + t.tagName.toLowerCase() + '> ' + String(t.src || t.href || '').slice(0, 120));
    } else {
      record('uncaught exception: ' + e.message + ' at ' + e.filename + ':' + e.lineno);
    }
  }, true);
  window.addEventListener('unhandledrejection', e => record('unhandled rejection: ' + e.reason));
})();
";

/// Waits for the load event and for every image to settle, then describes
/// each `<img>` as JSON.
const IMAGES_JS: &str = r"
(async () => {
  if (document.readyState !== 'complete') {
    await new Promise(r => window.addEventListener('load', r, { once: true }));
  }
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return JSON.stringify({ pageErrors: window.__pageErrors || ['hooks did not run'], images: imgs.map((i, index) => ({
    index,
    src: (i.getAttribute('src') || '').slice(0, 80),
    alt: i.getAttribute('alt') || '',
    naturalWidth: i.naturalWidth,
    naturalHeight: i.naturalHeight,
    complete: i.complete,
  })) });
})()
";

/// The page's own error list and its images, from the JSON of [`IMAGES_JS`].
fn parse_page_state(json: &str) -> (Vec<String>, Vec<ImageState>) {
    let v: serde_json::Value = serde_json::from_str(json).expect("page state is JSON");
    let page_errors = v["pageErrors"]
        .as_array()
        .expect("error list is an array")
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    let images = v["images"]
        .as_array()
        .expect("image list is an array")
        .iter()
        .map(|i| ImageState {
            index: usize::try_from(i["index"].as_u64().unwrap()).unwrap(),
            src_start: i["src"].as_str().unwrap().to_string(),
            alt: i["alt"].as_str().unwrap().to_string(),
            natural_width: i["naturalWidth"].as_u64().unwrap(),
            natural_height: i["naturalHeight"].as_u64().unwrap(),
            complete: i["complete"].as_bool().unwrap(),
        })
        .collect();
    (page_errors, images)
}

/// Size and number of distinct RGB colours of a PNG.
fn png_colours(png_bytes: &[u8]) -> (u32, u32, usize) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("screenshot is a PNG");
    let mut buf = vec![
        0;
        reader
            .output_buffer_size()
            .expect("PNG size fits in memory")
    ];
    let info = reader.next_frame(&mut buf).expect("decode screenshot");
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let colours: BTreeSet<[u8; 3]> = pixels
        .chunks_exact(channels)
        .map(|p| {
            if channels >= 3 {
                [p[0], p[1], p[2]]
            } else {
                [p[0], p[0], p[0]]
            }
        })
        .collect();
    (info.width, info.height, colours.len())
}

/// The `file://` URL of an absolute path, with the characters that would
/// end or change the path part of a URL percent-encoded.
fn file_url(path: &Path) -> String {
    let mut url = String::from("file://");
    for c in path.to_str().expect("path is UTF-8").chars() {
        match c {
            '%' => url.push_str("%25"),
            ' ' => url.push_str("%20"),
            '#' => url.push_str("%23"),
            '?' => url.push_str("%3F"),
            c => url.push(c),
        }
    }
    url
}

/// Opens `html` in headless Chromium, collects what went wrong while it
/// loaded, inspects its images, and writes a full-page screenshot to
/// `screenshot_to`.
fn check_in_browser(html: &Path, screenshot_to: &Path) -> BrowserReport {
    let html = html
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", html.display()));
    let url = file_url(&html);
    let profile = tempfile::tempdir().expect("temporary browser profile");
    let args: Vec<&OsStr> = [
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(chromium_path()))
        .headless(true)
        .sandbox(false)
        .window_size(Some(WINDOW))
        .user_data_dir(Some(profile.path().to_path_buf()))
        .args(args)
        .idle_browser_timeout(LOAD_TIMEOUT)
        .build()
        .expect("launch options");
    let browser = Browser::new(options).expect("start Chromium");
    let tab = browser.new_tab().expect("open a tab");
    tab.set_default_timeout(LOAD_TIMEOUT);

    let errors = Arc::new(Mutex::new(Vec::new()));
    tab.add_event_listener(Arc::new(listen_for_errors(Arc::clone(&errors))))
        .expect("listen to page events");
    tab.enable_runtime().expect("Runtime.enable");
    tab.enable_log().expect("Log.enable");
    tab.call_method(Network::Enable {
        max_total_buffer_size: None,
        max_resource_buffer_size: None,
        max_post_data_size: None,
        report_direct_socket_traffic: None,
        enable_durable_messages: None,
    })
    .expect("Network.enable");

    tab.call_method(Page::AddScriptToEvaluateOnNewDocument {
        source: HOOKS_JS.to_string(),
        world_name: None,
        include_command_line_api: None,
        run_immediately: None,
    })
    .expect("install error hooks");

    tab.navigate_to(&url)
        .and_then(|t| t.wait_until_navigated())
        .unwrap_or_else(|e| panic!("load {url}: {e}"));

    let state = tab.evaluate(IMAGES_JS, true).expect("inspect images");
    let Some(serde_json::Value::String(json)) = state.value else {
        panic!("inspecting the images gave no JSON: {state:?}")
    };
    let (page_errors, images) = parse_page_state(&json);

    let metrics = tab
        .call_method(Page::GetLayoutMetrics(None))
        .expect("page metrics");
    let size = metrics.css_content_size;
    let screenshot = tab
        .call_method(Page::CaptureScreenshot {
            format: Some(Page::CaptureScreenshotFormatOption::Png),
            quality: None,
            clip: Some(Page::Viewport {
                x: 0.0,
                y: 0.0,
                width: size.width.max(1.0),
                height: size.height.max(1.0),
                scale: 1.0,
            }),
            from_surface: Some(true),
            capture_beyond_viewport: Some(true),
            optimize_for_speed: None,
        })
        .expect("take screenshot");
    let screenshot_png = BASE64_STANDARD
        .decode(&screenshot.data)
        .expect("screenshot is base64");

    // Events travel on their own thread; give late ones a moment to land.
    std::thread::sleep(Duration::from_millis(300));
    let errors = errors.lock().unwrap().clone();

    if let Some(dir) = screenshot_to.parent() {
        std::fs::create_dir_all(dir).expect("create screenshot folder");
    }
    std::fs::write(screenshot_to, &screenshot_png).expect("write screenshot");
    let (screenshot_width, screenshot_height, distinct_colours) = png_colours(&screenshot_png);

    BrowserReport {
        errors,
        page_errors,
        images,
        screenshot_png,
        screenshot_width,
        screenshot_height,
        distinct_colours,
    }
}

/// Where the screenshot of the report is kept after the test.
fn artefact_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/cli sits two levels below the workspace root");
    workspace.join("target/test-artifacts")
}

#[test]
#[ignore = "needs Chromium (apt-get install chromium); .ci/run installs it and runs this test"]
fn report_opens_in_chromium_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path();
    let run = t.join("run");
    common::synth("two-phase", 96, 2, t);
    common::ok(&[
        "train",
        s(&t.join("image.npy")),
        "--out",
        s(&run),
        "--truth",
        s(&t.join("truth.npy")),
        "--window",
        "16",
        "--step",
        "8",
        "--hidden",
        "16",
        "--batch",
        "16",
        "--epochs",
        "2",
    ]);
    common::ok(&["report", s(&run)]);
    let html = run.join("report.html");
    assert!(html.is_file(), "phyvae report wrote no {}", html.display());

    assert_opens_cleanly(&html, "report-screenshot.png");
}

/// Opens `html` in Chromium and asserts the four checks of the module
/// documentation; the screenshot goes to `target/test-artifacts/<screenshot_name>`.
fn assert_opens_cleanly(html: &Path, screenshot_name: &str) {
    let shot = artefact_dir().join(screenshot_name);
    let report = check_in_browser(html, &shot);
    println!("report screenshot: {}", shot.display());
    println!(
        "{} images, screenshot {} x {} px with {} distinct colours",
        report.images.len(),
        report.screenshot_width,
        report.screenshot_height,
        report.distinct_colours
    );

    let errors = report.all_errors();
    assert!(
        errors.is_empty(),
        "the report gave errors in Chromium:\n{}",
        errors.join("\n")
    );
    assert!(
        !report.images.is_empty(),
        "the report shows no <img> at all"
    );
    let broken = report.broken_images();
    assert!(
        broken.is_empty(),
        "{} of {} images did not load or decode:\n{}",
        broken.len(),
        report.images.len(),
        broken
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        report.screenshot_width > 0 && report.screenshot_height > 0,
        "empty screenshot: {} x {}",
        report.screenshot_width,
        report.screenshot_height
    );
    assert!(
        !report.is_blank(),
        "the screenshot looks blank: {} distinct colours (need more than {MIN_COLOURS}); see {}",
        report.distinct_colours,
        shot.display()
    );
    assert_eq!(std::fs::read(&shot).unwrap(), report.screenshot_png);
}

/// The report of the README's main command, which `.ci/run` runs just before
/// this test and names in `PHYVAE_MAIN_REPORT`.
#[test]
#[ignore = "needs Chromium and the README's main command's report; .ci/run runs it"]
fn main_command_report_opens_in_chromium_without_errors() {
    let html = std::env::var_os("PHYVAE_MAIN_REPORT")
        .map(PathBuf::from)
        .expect("set PHYVAE_MAIN_REPORT to the report.html of the README's main command");
    assert!(html.is_file(), "no report at {}", html.display());
    assert_opens_cleanly(&html, "main-report-screenshot.png");
}

#[test]
#[ignore = "needs Chromium (apt-get install chromium); .ci/run installs it and runs this test"]
fn checker_catches_broken_pages() {
    let dir = tempfile::tempdir().unwrap();

    // A picture that is not a PNG, a console error, an uncaught exception and
    // a stylesheet that does not exist.
    let broken = dir.path().join("broken.html");
    std::fs::write(
        &broken,
        r#"<!doctype html><html><head><meta charset="utf-8"><title>broken</title>
<link rel="stylesheet" href="missing.css"></head><body>
<img alt="not a png" src="data:image/png;base64,bm90IGEgcG5nIGF0IGFsbA==">
<script>console.error("x")</script>
<script>null.boom()</script>
</body></html>"#,
    )
    .unwrap();
    let report = check_in_browser(&broken, &dir.path().join("broken.png"));
    println!("{report:#?}");
    // Both witnesses see every kind of error on their own.
    for (witness, errors) in [("DevTools", &report.errors), ("page", &report.page_errors)] {
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(
            has("console.error: x"),
            "{witness}: console.error missed: {report:#?}"
        );
        assert!(
            has("uncaught exception"),
            "{witness}: exception missed: {report:#?}"
        );
        assert!(
            has("missing.css"),
            "{witness}: failed load missed: {report:#?}"
        );
    }
    assert_eq!(report.images.len(), 1, "{report:#?}");
    let bad = report.broken_images();
    assert_eq!(bad.len(), 1, "broken image missed: {report:#?}");
    assert_eq!(bad[0].alt, "not a png");
    assert_eq!((bad[0].natural_width, bad[0].natural_height), (0, 0));
    println!("{}", bad[0]);

    // A page that is one white block: loads cleanly but shows nothing.
    let white = dir.path().join("white.html");
    std::fs::write(
        &white,
        r#"<!doctype html><html><head><meta charset="utf-8"><title>white</title></head>
<body style="margin:0;background:#fff"><div style="width:100%;height:1200px;background:#fff"></div></body></html>"#,
    )
    .unwrap();
    let report = check_in_browser(&white, &dir.path().join("white.png"));
    assert!(report.all_errors().is_empty(), "{report:#?}");
    assert!(report.images.is_empty());
    assert!(report.screenshot_width > 0 && report.screenshot_height > 0);
    assert!(
        report.is_blank(),
        "a white page counted as not blank: {} colours",
        report.distinct_colours
    );
    assert!(
        report.screenshot_height >= 1200,
        "not full-page: {report:#?}"
    );

    // And a page that does show something: a 32 x 32 gradient PNG with every
    // pixel a different colour, scaled up.
    let good = dir.path().join("good.html");
    let gradient = gradient_png(32, 32);
    std::fs::write(
        &good,
        format!(
            r#"<!doctype html><html><head><meta charset="utf-8"><title>good</title></head><body>
<img alt="gradient" width="256" height="256" src="data:image/png;base64,{}"></body></html>"#,
            BASE64_STANDARD.encode(&gradient)
        ),
    )
    .unwrap();
    let report = check_in_browser(&good, &dir.path().join("good.png"));
    assert!(report.all_errors().is_empty(), "{report:#?}");
    assert!(report.broken_images().is_empty(), "{report:#?}");
    assert_eq!(
        (
            report.images[0].natural_width,
            report.images[0].natural_height
        ),
        (32, 32)
    );
    assert!(!report.is_blank(), "{} colours", report.distinct_colours);
}

/// An RGB PNG whose pixels run through red and green by position.
fn gradient_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    let data: Vec<u8> = (0..h)
        .flat_map(|y| (0..w).flat_map(move |x| [(x * 255 / w) as u8, (y * 255 / h) as u8, 128]))
        .collect();
    writer.write_image_data(&data).unwrap();
    writer.finish().unwrap();
    out
}
