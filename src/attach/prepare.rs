//! A turn's files made ready for its model: the fresh messages' attachments planned
//! ([`super::plan`]), fetched concurrently within the limits ([`super::fetch`]), checked against
//! what they claimed to be, and put into the prompt turns: images as [`PromptImage`]s, text files
//! inlined, everything else and every skip told in the turn's text ([`super::render`]).

use base64::Engine;

use super::fetch::{FetchError, Fetched, Overflow};
use super::kind::{self, ImageType, Kind};
use super::plan::{self, Action, Skip};
use super::{render, AgentAttach};
use crate::llm::{PromptImage, PromptTurn};
use crate::message::Attachment;

/// What became of one file.
enum Outcome {
    /// Named, with why it was not given when it was not.
    Note(String),
    /// Its text inlined.
    Text(String),
    /// Given as an image, with the line naming it.
    Image(String, PromptImage),
}

/// Adds the files of `files[i]` to `turns[i]` (the turn's fresh messages, oldest first). The
/// limits hold for the whole turn. Never fails: a file that cannot be given is explained to the
/// model instead.
/// Returns what the fresh files took of the turn's limits, for [`again`].
pub async fn prepare(
    agent: &str,
    attach: &AgentAttach,
    turns: &mut [PromptTurn],
    files: &[Vec<Attachment>],
) -> plan::Used {
    let flat: Vec<(usize, &Attachment)> = files
        .iter()
        .enumerate()
        .flat_map(|(i, list)| list.iter().map(move |a| (i, a)))
        .collect();
    if flat.is_empty() {
        return plan::Used::default();
    }
    let limits = attach.settings.limits;
    let refs: Vec<&Attachment> = flat.iter().map(|(_, a)| *a).collect();
    let actions = plan::plan(&refs, attach.vision, &limits);
    let used = plan::used(&refs, &actions, &limits);
    let fetches = flat.iter().zip(&actions).map(|((_, a), action)| async move {
        let (max, overflow) = match action {
            Action::Image(_) => (limits.max_image_bytes, Overflow::Fail),
            Action::Text { max_bytes } => (*max_bytes, Overflow::Truncate),
            Action::Mention | Action::Skip(..) => return None,
        };
        Some(attach.fetcher.get(&a.url, max, overflow, limits.timeout).await)
    });
    let fetched = futures::future::join_all(fetches).await;
    let mut text_left = limits.text_chars;
    for (((turn, a), action), got) in flat.iter().zip(&actions).zip(fetched) {
        let outcome = match (action, got) {
            (Action::Image(declared), Some(Ok(f))) => image(a, *declared, f),
            (Action::Text { .. }, Some(Ok(f))) => match text(a, f, &mut text_left, limits.text_chars) {
                Ok(inlined) => Outcome::Text(inlined),
                Err(note) => Outcome::Note(note),
            },
            (Action::Image(t), Some(Err(e))) => failed(agent, Kind::Image(*t), a, &e),
            (Action::Text { .. }, Some(Err(e))) => failed(agent, Kind::Text, a, &e),
            (Action::Skip(kind, skip), _) => {
                tracing::info!(agent, attachment = a.id, file = %a.filename, reason = %render::skip_reason(*skip), "attachment not given to the model");
                Outcome::Note(render::not_given(*kind, a, &render::skip_reason(*skip)))
            }
            (Action::Mention, _) | (_, None) => Outcome::Note(render::mentioned(a)),
        };
        let counted = match (action, &outcome) {
            (_, Outcome::Image(..) | Outcome::Text(_)) => "sent",
            (Action::Skip(..), _) => "skipped",
            (Action::Mention, _) => "named",
            _ => "failed",
        };
        let kind = match action {
            Action::Image(_) | Action::Skip(Kind::Image(_), _) => "image",
            Action::Text { .. } | Action::Skip(Kind::Text, _) => "text",
            Action::Mention | Action::Skip(Kind::Other, _) => "other",
        };
        crate::ops::telemetry::attachment(agent, kind, counted);
        let t = &mut turns[*turn];
        let note = match outcome {
            Outcome::Note(note) | Outcome::Text(note) => note,
            Outcome::Image(note, image) => {
                t.images.push(image);
                note
            }
        };
        t.content = render::with_notes(&t.content, &[note]);
    }
    used
}

/// Sends the most recent images of earlier turns (`history[i]` carried `files[i]`) again, up to
/// `history_images`, while their URLs are valid and within what the fresh files left of the
/// limits ([`plan::again`]). One that cannot be fetched any more stays named only (memory's
/// "attached earlier" note); nothing is said, the model already answered it once.
pub async fn again(
    agent: &str,
    attach: &AgentAttach,
    history: &mut [PromptTurn],
    files: &[Vec<Attachment>],
    used: plan::Used,
) {
    let limits = attach.settings.limits;
    let earlier: Vec<(usize, &Attachment, Option<u64>)> = files
        .iter()
        .enumerate()
        .rev()
        .flat_map(|(i, list)| {
            list.iter()
                .rev()
                .map(move |a| (i, a, super::origin::expires_at(&a.url)))
        })
        .collect();
    if earlier.is_empty() || attach.settings.history_images == 0 {
        return;
    }
    let candidates: Vec<(&Attachment, Option<u64>)> = earlier.iter().map(|(_, a, ex)| (*a, *ex)).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let chosen = plan::again(
        &candidates,
        attach.vision,
        &limits,
        used,
        attach.settings.history_images,
        now,
    );
    let fetches = chosen.iter().map(|&k| {
        let (turn, a, _) = earlier[k];
        async move {
            let got = attach
                .fetcher
                .get(&a.url, limits.max_image_bytes, Overflow::Fail, limits.timeout)
                .await;
            (turn, a, got)
        }
    });
    // Oldest first within a turn, as they were posted.
    let mut fetched = futures::future::join_all(fetches).await;
    fetched.reverse();
    for (turn, a, got) in fetched {
        let declared = match kind::classify(&a.filename, a.content_type.as_deref()) {
            Kind::Image(t) => t,
            Kind::Text | Kind::Other => continue,
        };
        match got.map(|f| image(a, declared, f)) {
            Ok(Outcome::Image(_, img)) => history[turn].images.push(img),
            Ok(Outcome::Note(_) | Outcome::Text(_)) => {}
            Err(e) => {
                tracing::info!(agent, attachment = a.id, file = %a.filename, error = %e, "an earlier image is not sent again")
            }
        }
    }
}

fn failed(agent: &str, kind: Kind, a: &Attachment, e: &FetchError) -> Outcome {
    tracing::warn!(agent, attachment = a.id, file = %a.filename, error = %e, "attachment not fetched");
    Outcome::Note(render::not_given(kind, a, &format!("it could not be read ({e})")))
}

/// An image as fetched: it must be the image it claimed to be, and a GIF must be still.
fn image(a: &Attachment, declared: ImageType, f: Fetched) -> Outcome {
    let kind = Kind::Image(declared);
    let served = f.content_type.as_deref().map(kind::essence).unwrap_or_default();
    let served_ok = served.is_empty() || served.starts_with("image/") || served == "application/octet-stream";
    let Some(real) = kind::sniff_image(&f.bytes).filter(|_| served_ok) else {
        return Outcome::Note(render::not_given(
            kind,
            a,
            "its content is not a png, jpeg, webp or gif image",
        ));
    };
    if real == ImageType::Gif && kind::is_animated_gif(&f.bytes) {
        return Outcome::Note(render::not_given(
            kind,
            a,
            "it is an animated GIF, which models do not take",
        ));
    }
    let image = PromptImage {
        media_type: real.mime().to_string(),
        base64: base64::engine::general_purpose::STANDARD.encode(&f.bytes),
    };
    Outcome::Image(render::image_shown(a), image)
}

/// A text file as fetched, inlined within what is left of the character budget; or the note
/// saying why it was not.
fn text(a: &Attachment, f: Fetched, left: &mut usize, budget: usize) -> Result<String, String> {
    let served = f.content_type.as_deref().map(kind::essence).unwrap_or_default();
    let binary = ["image/", "audio/", "video/"].iter().any(|p| served.starts_with(p));
    if binary || !kind::looks_like_text(&f.bytes) {
        return Err(render::not_given(Kind::Text, a, "its content is not text"));
    }
    if *left == 0 {
        return Err(render::not_given(
            Kind::Text,
            a,
            &render::skip_reason(Skip::TextBudget { max: budget }),
        ));
    }
    // A body cut at the byte cap may end inside a character: drop that character's start.
    let bytes = match std::str::from_utf8(&f.bytes) {
        Err(e) if f.truncated && e.error_len().is_none() => &f.bytes[..e.valid_up_to()],
        _ => &f.bytes[..],
    };
    let text = String::from_utf8_lossy(bytes);
    let total = text.chars().count();
    let keep = total.min(*left);
    *left -= keep;
    let kept: String = text.chars().take(keep).collect();
    let cut = (keep < total || f.truncated).then(|| format!("at the {budget}-character budget for text files"));
    Ok(render::text_inlined(a, &kept, cut.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content_type: &str) -> Attachment {
        Attachment {
            id: 1,
            filename: name.into(),
            url: String::new(),
            proxy_url: String::new(),
            content_type: Some(content_type.into()),
            size: 10,
            width: None,
            height: None,
        }
    }

    fn fetched(bytes: &[u8], content_type: &str, truncated: bool) -> Fetched {
        Fetched {
            bytes: bytes.to_vec(),
            content_type: Some(content_type.into()),
            truncated,
        }
    }

    #[test]
    fn an_image_must_be_what_it_claims() {
        let png = b"\x89PNG\r\n\x1a\nrest";
        match image(
            &file("a.png", "image/png"),
            ImageType::Png,
            fetched(png, "image/png", false),
        ) {
            Outcome::Image(note, img) => {
                assert!(note.contains("you can see it"));
                assert_eq!(img.media_type, "image/png");
                assert_eq!(img.base64, base64::engine::general_purpose::STANDARD.encode(png));
            }
            Outcome::Note(n) | Outcome::Text(n) => panic!("{n}"),
        }
        // The bytes decide the media type sent (a jpeg named .png is sent as a jpeg).
        match image(
            &file("a.png", "image/png"),
            ImageType::Png,
            fetched(&[0xFF, 0xD8, 0xFF, 1], "image/png", false),
        ) {
            Outcome::Image(_, img) => assert_eq!(img.media_type, "image/jpeg"),
            Outcome::Note(n) | Outcome::Text(n) => panic!("{n}"),
        }
        for (bytes, served) in [(&b"<html>"[..], "image/png"), (&png[..], "text/html")] {
            match image(
                &file("a.png", "image/png"),
                ImageType::Png,
                fetched(bytes, served, false),
            ) {
                Outcome::Note(n) => assert!(n.contains("not a png, jpeg, webp or gif"), "{n}"),
                Outcome::Image(..) | Outcome::Text(_) => panic!("{served} accepted"),
            }
        }
    }

    #[test]
    fn text_shares_one_budget_and_says_where_it_was_cut() {
        let mut left = 8;
        let a = text(
            &file("a.txt", "text/plain"),
            fetched(b"hello", "text/plain", false),
            &mut left,
            8,
        )
        .unwrap();
        assert!(a.contains("\nhello\n[end of a.txt]"), "{a}");
        let b = text(
            &file("b.txt", "text/plain"),
            fetched("wörld!".as_bytes(), "text/plain", false),
            &mut left,
            8,
        )
        .unwrap();
        assert!(
            b.contains("\nwör\n[end of b.txt: cut here, at the 8-character budget"),
            "{b}"
        );
        let c = text(
            &file("c.txt", "text/plain"),
            fetched(b"more", "text/plain", false),
            &mut left,
            8,
        )
        .unwrap_err();
        assert!(
            c.contains("not shown to you: the 8-character budget for text files is spent"),
            "{c}"
        );
        // A cut inside a multibyte character drops the partial character.
        let mut left = 100;
        let d = text(
            &file("d.txt", "text/plain"),
            fetched(&"é".as_bytes()[..1], "text/plain", true),
            &mut left,
            100,
        )
        .unwrap();
        assert!(d.contains("follows]\n\n[end of d.txt: cut here"), "{d}");
        let bin = text(
            &file("e.txt", "text/plain"),
            fetched(b"\x00\x01", "text/plain", false),
            &mut left,
            100,
        )
        .unwrap_err();
        assert!(bin.contains("its content is not text"), "{bin}");
    }
}
