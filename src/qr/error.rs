//! The one error type of rendering and decoding QR images, with messages
//! for the person who uploaded the image and stable codes for clients.

use super::render::MAX_SCALE;

/// Why a code could not be rendered, or an image could not be read.
///
/// The messages are written for the person who uploaded the image; each
/// variant also has a stable [`QrError::code`] for clients.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The bytes are not a PNG or JPEG image, or the image is damaged.
    #[error("the file is not a readable PNG or JPEG image")]
    NotAnImage,
    /// The upload has more bytes than the limit; refused before reading it.
    #[error("the file is too large; at most {max_bytes} bytes are accepted")]
    FileTooLarge {
        /// The byte limit in force.
        max_bytes: usize,
    },
    /// The image has more pixels than the limit; refused from its header,
    /// before any pixel memory is allocated.
    #[error("the image is too large; at most {max_pixels} pixels are accepted")]
    ImageTooLarge {
        /// The pixel limit in force.
        max_pixels: u64,
    },
    /// No QR code could be located in the image.
    #[error("no QR code was found in the image; photograph the whole code, flat and in focus")]
    NoQrCode,
    /// A QR code was located but its content could not be read.
    #[error("a QR code was found but could not be read; take a sharper, closer photo")]
    Unreadable,
    /// The text does not fit in a QR code.
    #[error("the text is too long for a QR code")]
    ContentTooLong,
    /// The requested module size is outside 1..=[`MAX_SCALE`] pixels.
    #[error("the QR module size must be between 1 and {MAX_SCALE} pixels, not {scale}")]
    InvalidScale {
        /// The module size asked for.
        scale: u32,
    },
    /// Encoding the rendered image as PNG failed.
    #[error("the QR code image could not be encoded")]
    Encode(#[source] image::ImageError),
}

impl QrError {
    /// A stable machine-readable code for API responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            QrError::NotAnImage => "not_an_image",
            QrError::FileTooLarge { .. } => "file_too_large",
            QrError::ImageTooLarge { .. } => "image_too_large",
            QrError::NoQrCode => "no_qr_code",
            QrError::Unreadable => "qr_unreadable",
            QrError::ContentTooLong => "qr_content_too_long",
            QrError::InvalidScale { .. } => "invalid_scale",
            QrError::Encode(_) => "qr_encode_failed",
        }
    }
}
