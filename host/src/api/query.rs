//! The list endpoint's query string, bound as obshell binds it: the first
//! value of a repeated key wins, an empty int is 0, a non-int is a bind error.

use crate::service::ListRequest;

use super::errors::ApiError;

pub fn list_request(query: Option<&str>) -> Result<ListRequest, ApiError> {
    let mut request = ListRequest::default();
    let mut seen = std::collections::HashSet::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !seen.insert(key.to_string()) {
            continue;
        }
        let value = value.into_owned();
        match key.as_ref() {
            "credential_id" => request.credential_id = int(&value)?,
            "target_type" => request.target_type = value,
            "key_word" => request.key_word = value,
            "page" => request.page = int(&value)?,
            "page_size" => request.page_size = int(&value)?,
            "sort" => request.sort = value,
            "sort_order" => request.sort_order = value,
            _ => {}
        }
    }
    Ok(request)
}

/// `forget_host_keys` of an update's query: `true` (or `1`) to learn every
/// target's host key afresh, as on create, in place of checking its pins.
pub fn forget_host_keys(query: Option<&str>) -> Result<bool, ApiError> {
    let value = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(key, _)| key == "forget_host_keys")
        .map(|(_, value)| value.into_owned());
    match value.as_deref() {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(ApiError::from(crate::service::Error::IllegalArgument(
            "forget_host_keys is true or false".into(),
        ))),
    }
}

fn int(value: &str) -> Result<i64, ApiError> {
    if value.is_empty() {
        return Ok(0);
    }
    value.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        ApiError::bind(format!("strconv.ParseInt: parsing {value:?}: {why}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_like_obshell() {
        let r = list_request(Some(
            "page=&page_size=9223372036854775807&sort=NAME&page=3&key_word=a%25b",
        ))
        .unwrap();
        assert_eq!(r.page, 0);
        assert_eq!(r.page_size, i64::MAX);
        assert_eq!(r.sort, "NAME");
        assert_eq!(r.key_word, "a%b");
        let e = list_request(Some("page=abc")).unwrap_err();
        assert_eq!(e.err_code, "Common.BindJsonFailed");
        assert!(e.message.contains(r#"parsing "abc": invalid syntax"#));
        assert!(list_request(Some("page_size=9223372036854775808")).is_err());
    }
}
