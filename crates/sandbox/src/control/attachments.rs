//! Files on a tester's message (`attachments` in `POST /sandbox/messages`): given as text or
//! base64, held to Discord's 10 MiB upload limit like a bot's.

use base64::Engine;
use serde::Deserialize;

use crate::error::ApiError;
use crate::rest::uploads::UPLOAD_LIMIT;
use crate::world::Upload;

/// One file as the control API takes it: `text` or `base64`, not both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlFile {
    filename: String,
    content_type: Option<String>,
    description: Option<String>,
    text: Option<String>,
    base64: Option<String>,
}

fn bad(i: usize, message: &str) -> ApiError {
    ApiError::invalid_form(&format!("attachments.{i}"), "BASE_TYPE_BAD_FORM", message)
}

/// The uploads, numbered as listed (`files[n]`).
pub fn uploads(files: Vec<ControlFile>) -> Result<Vec<(usize, Upload)>, ApiError> {
    let mut total = 0;
    let mut out = Vec::with_capacity(files.len());
    for (i, f) in files.into_iter().enumerate() {
        let bytes = match (f.text, f.base64) {
            (Some(t), None) => t.into_bytes(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|_| bad(i, "`base64` is not valid base64"))?,
            _ => return Err(bad(i, "give exactly one of `text` and `base64`")),
        };
        total += bytes.len();
        if total > UPLOAD_LIMIT {
            return Err(ApiError::entity_too_large());
        }
        out.push((
            i,
            Upload {
                filename: f.filename,
                content_type: f.content_type,
                description: f.description,
                bytes,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: Option<&str>, b64: Option<&str>) -> ControlFile {
        ControlFile {
            filename: "a.txt".into(),
            content_type: None,
            description: None,
            text: text.map(str::to_string),
            base64: b64.map(str::to_string),
        }
    }

    #[test]
    fn text_or_base64_but_not_both() {
        let got = uploads(vec![file(Some("hi"), None), file(None, Some("aGk="))]).unwrap();
        assert_eq!(got[0].1.bytes, b"hi");
        assert_eq!(got[1].1.bytes, b"hi");
        assert_eq!(got[1].0, 1);
        assert!(uploads(vec![file(Some("x"), Some("eA=="))]).is_err());
        assert!(uploads(vec![file(None, Some("!!"))]).is_err());
    }
}
