//! Uploaded files become attachments: an ID, a sanitised file name, the image size and type read
//! from the bytes, and the URL the sandbox serves them at.

use std::sync::Arc;

use super::extras::Attachment;
use super::World;
use crate::image_size::image_size;

/// A file as uploaded, before it is attached.
#[derive(Debug, Clone)]
pub struct Upload {
    /// File name the client gave.
    pub filename: String,
    /// Content type the client gave.
    pub content_type: Option<String>,
    /// Alt text (`attachments[].description` in the payload).
    pub description: Option<String>,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A file name as Discord keeps it: no directories, and characters other than letters, digits,
/// `.`, `-` and `_` replaced by `_`.
pub fn sanitise_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.trim_matches('.').is_empty() {
        "unknown".to_string()
    } else {
        clean
    }
}

impl World {
    /// Makes an attachment for `channel_id` served under `base_url` (`http://ADDR`).
    pub fn new_attachment(&mut self, channel_id: u64, upload: Upload, base_url: &str) -> Attachment {
        let id = self.ids.next_id();
        let filename = sanitise_filename(&upload.filename);
        let image = image_size(&upload.bytes);
        let content_type = image
            .map(|(kind, _, _)| kind.mime().to_string())
            .or(upload.content_type);
        Attachment {
            id,
            url: format!("{base_url}/attachments/{channel_id}/{id}/{filename}"),
            filename,
            content_type,
            description: upload.description,
            dimensions: image.map(|(_, w, h)| (w, h)),
            bytes: Arc::new(upload.bytes),
        }
    }

    /// An attachment of a message in `channel_id`, by ID.
    pub fn attachment(&self, channel_id: u64, id: u64) -> Option<&Attachment> {
        self.channel(channel_id)?
            .messages
            .iter()
            .flat_map(|m| m.extra.attachments.iter())
            .find(|a| a.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_directories_and_odd_characters() {
        assert_eq!(sanitise_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitise_filename("C:\\x\\my photo (1).png"), "my_photo__1_.png");
        assert_eq!(sanitise_filename(".."), "unknown");
        assert_eq!(sanitise_filename("ok-file_2.txt"), "ok-file_2.txt");
    }

    #[test]
    fn images_get_their_size_and_type() {
        let (mut w, _, _, general) = crate::world::tests::world();
        let png = {
            let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
            b.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 2]);
            b
        };
        let upload = Upload {
            filename: "a b.png".into(),
            content_type: Some("application/octet-stream".into()),
            description: None,
            bytes: png,
        };
        let a = w.new_attachment(general, upload, "http://h");
        assert_eq!(a.dimensions, Some((3, 2)));
        assert_eq!(a.content_type.as_deref(), Some("image/png"));
        assert_eq!(a.url, format!("http://h/attachments/{general}/{}/a_b.png", a.id));
    }
}
