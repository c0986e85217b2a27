//! The pages module's own tests: escaping, languages, fallback, validation.

use std::collections::BTreeMap;
use std::time::Duration;

use super::settings::{File, Language, PageSettings, Theme};
use super::{ErrorInfo, Look, Visitor, Waiting};
use crate::settings::{Provenance, Reader};

const EVIL: &str = "<script>alert('x')</script>&\"";

fn waiting(app: &str) -> Waiting<'_> {
    Waiting {
        app,
        waiting_for: Duration::from_secs(4),
        started_at: Some(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        eta: Some(Duration::from_secs(10)),
        previous_failure: true,
    }
}

fn error<'a>(values: &'a [(&'a str, &'a str)], app: Option<&'a str>) -> ErrorInfo<'a> {
    ErrorInfo {
        status: 404,
        reason: "Not Found",
        code: "unknown_app",
        message: "no app is served at x",
        retry_after: None,
        app,
        back_at: Some(EVIL),
        values,
    }
}

/// A look with a custom template that prints every variable.
fn printing_everything() -> std::sync::Arc<Look> {
    let template = "{{ page }}|{{ lang }}|{{ title }}|{{ display_name }}|{{ app }}|\
                    {{ message }}|{{ reason }}|{{ code }}|{{ back_at }}|{{ request_id }}|\
                    {{ logo }}|{{ error }}|{{ started_at }}|{% for k, v in text|items %}{{ v }}|{% endfor %}";
    Look::new(&PageSettings {
        template: Some(File {
            path: "all.html".into(),
            text: template.into(),
        }),
        title: Some(EVIL.into()),
        ..PageSettings::default()
    })
}

#[test]
fn every_variable_is_escaped() {
    let visitor = Visitor {
        accept_language: None,
        request_id: Some("<id>"),
    };
    for look in [Look::builtin(), printing_everything()] {
        let pages = [
            look.waiting(&visitor, &waiting(EVIL)),
            look.error(&visitor, &error(&[("host", EVIL)], Some(EVIL))),
            look.login(&visitor, true),
        ];
        for page in pages {
            assert!(!page.contains("<script>"), "{page}");
            assert!(!page.contains("<id>"), "{page}");
        }
    }
    let custom = printing_everything();
    let page = custom.error(&visitor, &error(&[("host", EVIL)], Some(EVIL)));
    assert!(page.contains("&lt;script&gt;"), "{page}");
    assert!(page.contains("&lt;id&gt;"), "{page}");
}

#[test]
fn the_built_in_pages_say_what_they_said() {
    let look = Look::builtin();
    let page = look.waiting(&Visitor::default(), &waiting("hello"));
    assert!(page.contains(r#"<html lang="en">"#), "{page}");
    assert!(page.contains("<title>Waking up hello…</title>"), "{page}");
    assert!(
        page.contains(r#"<meta http-equiv="refresh" content="3">"#),
        "{page}"
    );
    assert!(
        page.contains(r#"role="status" aria-live="polite""#),
        "{page}"
    );
    assert!(
        page.contains("Started 4s ago; it usually takes about 10s."),
        "{page}"
    );
    assert!(
        page.contains("The previous attempt to start it failed"),
        "{page}"
    );
    assert!(page.contains(r#"role="progressbar""#), "{page}");
    assert!(page.contains("prefers-reduced-motion"), "{page}");
    assert!(page.contains(super::CARD_STYLE), "{page}");
    let page = look.error(&Visitor::default(), &error(&[("host", "x")], None));
    assert!(page.contains("<h1>404 Not Found</h1>"), "{page}");
    assert!(page.contains("<p>no app is served at x</p>"), "{page}");
    let page = look.login(&Visitor::default(), true);
    assert!(page.contains("That token is not a valid token."), "{page}");
    assert!(page.contains(r#"name="token""#), "{page}");
}

#[test]
fn the_language_follows_accept_language_then_the_default() {
    let look = Look::new(&PageSettings {
        language: Some("fr".into()),
        languages: BTreeMap::from([(
            "de".to_owned(),
            Language {
                path: "de.yml".into(),
                messages: BTreeMap::from([(
                    "waiting.title".to_owned(),
                    "{name} wird geweckt…".to_owned(),
                )]),
            },
        )]),
        ..PageSettings::default()
    });
    let page = |accept: &str| {
        look.waiting(
            &Visitor {
                accept_language: Some(accept),
                request_id: None,
            },
            &waiting("shop"),
        )
    };
    let french = page("fr-CA,fr;q=0.9");
    assert!(french.contains(r#"<html lang="fr">"#), "{french}");
    assert!(french.contains("Réveil de shop…"), "{french}");
    let english = page("de;q=0.5, en;q=0.8");
    assert!(english.contains(r#"<html lang="en">"#), "{english}");
    let german = page("de-DE");
    assert!(german.contains(r#"<html lang="de">"#), "{german}");
    assert!(german.contains("shop wird geweckt…"), "{german}");
    // Missing German messages are English.
    assert!(
        german.contains("This app sleeps when nobody uses it"),
        "{german}"
    );
    // None of ours: the look's default.
    let default = page("es, it;q=0.5");
    assert!(default.contains(r#"<html lang="fr">"#), "{default}");
}

#[test]
fn a_template_failing_at_render_falls_back_and_is_logged_once() {
    let look = Look::new(&PageSettings {
        template: Some(File {
            path: "broken.html".into(),
            text: "<p>{{ app | no_such_filter }}</p>".into(),
        }),
        theme: Some(Theme::Dark),
        ..PageSettings::default()
    });
    let first = look.waiting(&Visitor::default(), &waiting("shop"));
    assert!(first.contains("Waking up shop…"), "{first}");
    assert!(look.warned.load(std::sync::atomic::Ordering::Relaxed));
    let second = look.error(&Visitor::default(), &error(&[("host", "x")], None));
    assert!(second.contains("404"), "{second}");
}

fn read(yaml: &str) -> Vec<String> {
    let provenance = Provenance::default();
    let mut reader = Reader::new(&provenance);
    let tree = crate::settings::parse_yaml(yaml).expect("yaml");
    let page = reader.page(&tree, "rules[0].page");
    reader.page_language(&page, None);
    reader.errors.iter().map(ToString::to_string).collect()
}

#[test]
fn settings_are_checked_with_their_paths() {
    let dir = std::env::temp_dir().join(format!("paastis-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let broken = dir.join("broken.html");
    std::fs::write(&broken, "<p>\n{% if x %}\n<b>unclosed</b>\n").expect("write");
    let messages = dir.join("de.yml");
    std::fs::write(&messages, "waiting:\n  title: Hallo\n  wrong: x\n").expect("write");
    let errors = read(&format!(
        "{{theme: neon, template: {}, logo: 'javascript:alert(1)', accent_color: 'red;x', \
         language: es, languages: {{de: {}}}, css: /nonexistent.css, shape: round}}",
        broken.display(),
        messages.display()
    ));
    let all = errors.join("\n");
    assert!(
        all.contains("rules[0].page.theme: `neon` is not a theme"),
        "{all}"
    );
    assert!(
        all.contains(&format!(
            "rules[0].page.template: {}: line ",
            broken.display()
        )),
        "{all}"
    );
    assert!(all.contains("rules[0].page.logo: "), "{all}");
    assert!(all.contains("rules[0].page.accent_color: "), "{all}");
    assert!(all.contains("rules[0].page.language: `es`"), "{all}");
    assert!(
        all.contains("rules[0].page.languages.de: ") && all.contains("`waiting.wrong`"),
        "{all}"
    );
    assert!(all.contains("rules[0].page.css: cannot read"), "{all}");
    assert!(all.contains("rules[0].page.shape: unknown key"), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(read("{theme: dark, title: Acme, language: fr}").is_empty());
}

#[test]
fn the_built_in_template_compiles() {
    super::template::compile("page.html", include_str!("templates/page.html")).expect("compiles");
}

#[test]
fn a_device_or_a_huge_file_is_refused_not_read_forever() {
    let errors = |yaml: &str| read(yaml).join("\n");
    let device = errors("{template: /dev/zero}");
    assert!(
        device.contains("rules[0].page.template: cannot read /dev/zero: not a regular file"),
        "{device}"
    );
    let dir = std::env::temp_dir().join(format!("paastis-page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let big = dir.join("big.css");
    std::fs::write(&big, vec![b'a'; 1024 * 1024 + 1]).expect("write");
    let huge = errors(&format!("{{css: {}}}", big.display()));
    assert!(huge.contains("larger than 1024 KiB"), "{huge}");
    let _ = std::fs::remove_dir_all(&dir);
}
