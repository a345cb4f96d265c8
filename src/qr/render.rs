//! Rendering a code as PNG (for screens) or SVG (for print and e-mail).

use std::io::Cursor;

use image::{GrayImage, ImageFormat, Luma};
use qrcode::{EcLevel, QrCode};

use super::QrError;

/// The largest module size, in pixels, that the renderers accept; a version-4
/// code at this size is about 2.6 k pixels wide, plenty for print.
pub const MAX_SCALE: u32 = 64;

/// Builds the code at level M: 15% of the code may be lost and it still
/// reads, and an rxchain payload still fits version 4 (33×33 modules).
fn build_code(content: &str, scale: u32) -> Result<QrCode, QrError> {
    if !(1..=MAX_SCALE).contains(&scale) {
        return Err(QrError::InvalidScale { scale });
    }
    QrCode::with_error_correction_level(content.as_bytes(), EcLevel::M)
        .map_err(|_| QrError::ContentTooLong)
}

/// Renders `content` (usually [`QrPayload::encode`] or
/// [`QrPayload::patient_link`]) as a black-on-white grayscale PNG, with
/// `scale` pixels per module and the standard 4-module quiet zone.
///
/// CPU work: async callers should run it in `spawn_blocking`.
pub fn render_png(content: &str, scale: u32) -> Result<Vec<u8>, QrError> {
    let code = build_code(content, scale)?;
    let img: GrayImage = code
        .render::<Luma<u8>>()
        .module_dimensions(scale, scale)
        .quiet_zone(true)
        .build();
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png)
        .map_err(QrError::Encode)?;
    Ok(out.into_inner())
}

/// Renders `content` as a standalone SVG document, with `scale` user units
/// per module and the standard 4-module quiet zone. The SVG scales without
/// blur, which suits print and e-mail.
pub fn render_svg(content: &str, scale: u32) -> Result<String, QrError> {
    let code = build_code(content, scale)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .module_dimensions(scale, scale)
        .quiet_zone(true)
        .build())
}
