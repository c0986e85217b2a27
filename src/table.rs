//! Plain-text tables: the managed apps, for the startup log and `paastis check`, and the
//! layout the CLI's tables share. Rendering only: it reads apps, changes nothing.

use std::sync::Arc;

use crate::lifecycle::App;

/// One line per app: name, route host, provider, state, idle policy.
pub fn apps_table(apps: &[Arc<App>], domains: &[String]) -> String {
    apps_table_head(apps, domains, usize::MAX)
}

/// [`apps_table`] of the first `limit` apps, then a line that says how many more there are
/// (a log line stays readable with 100,000 apps).
pub fn apps_table_head(apps: &[Arc<App>], domains: &[String], limit: usize) -> String {
    let (shown, more) = apps.split_at(apps.len().min(limit));
    let mut out = rows_table(shown, domains);
    if !more.is_empty() {
        out.push_str(&format!(
            "... and {} more (`paastis apps`, the dashboard or GET /api/v1/apps list them all)\n",
            more.len()
        ));
    }
    out
}

fn rows_table(apps: &[Arc<App>], domains: &[String]) -> String {
    let mut rows = vec![[
        "APP".to_owned(),
        "ROUTE".to_owned(),
        "PROVIDER".to_owned(),
        "STATE".to_owned(),
        "MAX IDLE".to_owned(),
    ]];
    for app in apps {
        let route = match domains.first() {
            Some(domain) => format!("{}.{domain}", app.key.name),
            None => format!("{}.*", app.key.name),
        };
        rows.push([
            app.key.name.to_string(),
            route,
            app.provider_id().to_owned(),
            app.state().to_string(),
            app.conf().policy.max_idle_text(),
        ]);
    }
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    let mut out = render(&rows);
    if apps.is_empty() {
        out.push_str("(no app)\n");
    }
    out
}

/// Rows in columns two spaces apart, the last column unpadded, trailing spaces trimmed.
pub fn render(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if index + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
