//! Laravel's length-aware paginator JSON (shared/spec/api-accounts.md §1.6).

use serde_json::{json, Value};

use super::locale::Locale;

/// Pages on each side of the current one in the link window (Laravel's default).
const ON_EACH_SIDE: u64 = 3;

/// The page number a `?page=` value asks for: missing or invalid → 1.
pub fn page_number(raw: Option<&str>) -> u64 {
    raw.and_then(|p| p.trim().parse::<u64>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
}

/// Builds the paginator body. `path` is the absolute URL of the listing without query string.
pub fn paginate(
    data: Vec<Value>,
    total: u64,
    page: u64,
    per_page: u64,
    path: &str,
    locale: Locale,
) -> Value {
    let last_page = total.div_ceil(per_page).max(1);
    let url = |p: u64| format!("{path}?page={p}");
    let (from, to) = if data.is_empty() {
        (Value::Null, Value::Null)
    } else {
        let from = (page - 1) * per_page + 1;
        (json!(from), json!(from + data.len() as u64 - 1))
    };
    let (previous_label, next_label) = match locale {
        Locale::En => ("&laquo; Previous", "Next &raquo;"),
        Locale::Fr => ("&laquo; Précédent", "Suivant &raquo;"),
    };
    let previous_url = (page > 1).then(|| url(page - 1));
    let next_url = (page < last_page).then(|| url(page + 1));

    let mut links = vec![json!({"url": previous_url, "label": previous_label, "active": false})];
    for element in window(page, last_page) {
        match element {
            Some(p) => {
                links.push(json!({"url": url(p), "label": p.to_string(), "active": p == page}))
            }
            None => links.push(json!({"url": null, "label": "...", "active": false})),
        }
    }
    links.push(json!({"url": next_url, "label": next_label, "active": false}));

    json!({
        "current_page": page,
        "data": data,
        "first_page_url": url(1),
        "from": from,
        "last_page": last_page,
        "last_page_url": url(last_page),
        "links": links,
        "next_page_url": next_url,
        "path": path,
        "per_page": per_page,
        "prev_page_url": previous_url,
        "to": to,
        "total": total,
    })
}

/// Laravel's UrlWindow: page numbers, `None` standing for a `...` separator.
fn window(page: u64, last: u64) -> Vec<Option<u64>> {
    let range = |a: u64, b: u64| (a..=b).map(Some).collect::<Vec<_>>();
    if last < ON_EACH_SIDE * 2 + 8 {
        return range(1, last);
    }
    let window = ON_EACH_SIDE + 4;
    let start = range(1, 2);
    let finish = range(last - 1, last);
    let mut pages = Vec::new();
    if page <= window {
        pages.extend(range(1, window + ON_EACH_SIDE));
        pages.push(None);
        pages.extend(finish);
    } else if page > last - window {
        pages.extend(start);
        pages.push(None);
        pages.extend(range(last - (window + (ON_EACH_SIDE - 1)), last));
    } else {
        pages.extend(start);
        pages.push(None);
        pages.extend(range(page - ON_EACH_SIDE, page + ON_EACH_SIDE));
        pages.push(None);
        pages.extend(finish);
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_page_of_three() {
        let data: Vec<Value> = (1..=20).map(|i| json!({"id": i})).collect();
        let body = paginate(data, 45, 1, 20, "http://h/api/accounts", Locale::En);
        assert_eq!(body["from"], 1);
        assert_eq!(body["to"], 20);
        assert_eq!(body["last_page"], 3);
        assert_eq!(body["next_page_url"], "http://h/api/accounts?page=2");
        assert_eq!(body["prev_page_url"], Value::Null);
        let links = body["links"].as_array().unwrap();
        assert_eq!(links.len(), 5);
        assert_eq!(links[0]["label"], "&laquo; Previous");
        assert_eq!(links[1]["active"], true);
        assert_eq!(links[4]["url"], "http://h/api/accounts?page=2");
    }

    #[test]
    fn empty_and_past_the_end() {
        let body = paginate(vec![], 0, 1, 30, "http://h/x", Locale::Fr);
        assert_eq!(body["from"], Value::Null);
        assert_eq!(body["last_page"], 1);
        assert_eq!(body["links"][2]["label"], "Suivant &raquo;");
        let body = paginate(vec![], 3, 5, 30, "http://h/x", Locale::En);
        assert_eq!(body["data"], json!([]));
        assert_eq!(body["current_page"], 5);
    }

    #[test]
    fn sliding_window() {
        let labels = |page| {
            window(page, 50)
                .into_iter()
                .map(|p| p.map_or("...".to_string(), |p| p.to_string()))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(labels(1), "1,2,3,4,5,6,7,8,9,10,...,49,50");
        assert_eq!(labels(25), "1,2,...,22,23,24,25,26,27,28,...,49,50");
        assert_eq!(labels(50), "1,2,...,41,42,43,44,45,46,47,48,49,50");
        assert_eq!(page_number(Some("x")), 1);
        assert_eq!(page_number(Some("0")), 1);
        assert_eq!(page_number(Some("3")), 3);
    }
}
