//! Pixel dimensions and MIME type of PNG, JPEG, GIF and WebP images read from their headers, for
//! attachments' `width`, `height` and `content_type`. Pure; anything else is "not an image".

/// An image format the sandbox recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// GIF.
    Gif,
    /// WebP.
    Webp,
}

impl ImageKind {
    /// Its MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Gif => "image/gif",
            ImageKind::Webp => "image/webp",
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?)))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?)))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let x = b.get(at..at + 3)?;
    Some(u32::from(x[0]) | u32::from(x[1]) << 8 | u32::from(x[2]) << 16)
}

/// The format and `(width, height)` of an image, or `None` if the bytes are not one.
pub fn image_size(b: &[u8]) -> Option<(ImageKind, u32, u32)> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") && b.get(12..16) == Some(b"IHDR") {
        let w = u32::from_be_bytes(b.get(16..20)?.try_into().ok()?);
        let h = u32::from_be_bytes(b.get(20..24)?.try_into().ok()?);
        return Some((ImageKind::Png, w, h));
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Some((ImageKind::Gif, le16(b, 6)?, le16(b, 8)?));
    }
    if b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return webp(b).map(|(w, h)| (ImageKind::Webp, w, h));
    }
    if b.starts_with(&[0xFF, 0xD8]) {
        return jpeg(b).map(|(w, h)| (ImageKind::Jpeg, w, h));
    }
    None
}

fn webp(b: &[u8]) -> Option<(u32, u32)> {
    match b.get(12..16)? {
        // Lossy: the frame header after the 3-byte tag and start code holds 14-bit sizes.
        b"VP8 " => Some((le16(b, 26)? & 0x3FFF, le16(b, 28)? & 0x3FFF)),
        // Lossless: 14 bits each, minus one, after the 0x2F signature.
        b"VP8L" => {
            let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        // Extended: canvas size as 24-bit values minus one.
        b"VP8X" => Some((le24(b, 24)? + 1, le24(b, 27)? + 1)),
        _ => None,
    }
}

/// Walks JPEG segments to the first start-of-frame marker (SOF0..SOF15 except DHT, JPG, DAC).
fn jpeg(b: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        while *b.get(at)? != 0xFF {
            at += 1;
        }
        while *b.get(at)? == 0xFF {
            at += 1;
        }
        let marker = *b.get(at)?;
        at += 1;
        if matches!(marker, 0xD8 | 0x01 | 0xD0..=0xD7) {
            continue;
        }
        let len = be16(b, at)? as usize;
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            return Some((be16(b, at + 5)?, be16(b, at + 3)?));
        }
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png() {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend_from_slice(&640u32.to_be_bytes());
        b.extend_from_slice(&480u32.to_be_bytes());
        assert_eq!(image_size(&b), Some((ImageKind::Png, 640, 480)));
        assert_eq!(image_size(&b[..18]), None);
    }

    #[test]
    fn gif() {
        assert_eq!(
            image_size(b"GIF89a\x20\x03\x58\x02rest"),
            Some((ImageKind::Gif, 800, 600))
        );
    }

    #[test]
    fn jpeg_skips_app_segments_to_the_frame() {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB];
        b.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x03]);
        assert_eq!(image_size(&b), Some((ImageKind::Jpeg, 640, 480)));
        assert_eq!(image_size(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00]), None);
    }

    #[test]
    fn webp_lossy_lossless_and_extended() {
        let head = |tag: &[u8]| {
            let mut b = b"RIFF\0\0\0\0WEBP".to_vec();
            b.extend_from_slice(tag);
            b.extend_from_slice(&[0; 4]);
            b
        };
        let mut lossy = head(b"VP8 ");
        lossy.extend_from_slice(&[0, 0, 0, 0x9D, 0x01, 0x2A]);
        lossy.extend_from_slice(&320u16.to_le_bytes());
        lossy.extend_from_slice(&200u16.to_le_bytes());
        assert_eq!(image_size(&lossy), Some((ImageKind::Webp, 320, 200)));
        let mut lossless = head(b"VP8L");
        lossless.push(0x2F);
        let bits: u32 = (100 - 1) | ((50 - 1) << 14);
        lossless.extend_from_slice(&bits.to_le_bytes());
        assert_eq!(image_size(&lossless), Some((ImageKind::Webp, 100, 50)));
        let mut ext = head(b"VP8X");
        ext.extend_from_slice(&[0; 4]);
        ext.extend_from_slice(&[0xFF, 0x03, 0x00, 0xFF, 0x01, 0x00]);
        assert_eq!(image_size(&ext), Some((ImageKind::Webp, 1024, 512)));
    }

    #[test]
    fn other_bytes_are_not_images() {
        assert_eq!(image_size(b"hello world"), None);
        assert_eq!(image_size(b""), None);
    }
}
