//! QR payloads: encoding, rendering and decoding of prescription QR codes.
//!
//! A prescription's QR code carries two things: the prescription id, which
//! anyone may know, and the access secret, which proves that whoever scanned
//! the code holds the patient's slip (product rule 4). [`QrPayload`] is that
//! pair, with a short text form that fits a version-4 QR code in alphanumeric
//! mode and that survives a handheld scanner typing it into a form.
//!
//! The module has three parts:
//!
//! - the payload text form, [`QrPayload::encode`] and [`QrPayload::parse`],
//!   with a checksum so that a mistyped code is told apart from a wrong one;
//! - rendering, [`render_png`] and [`render_svg`], for the doctor's screen,
//!   print-outs and e-mail;
//! - decoding, [`decode_image`], which finds and reads a code in an uploaded
//!   photo, trying a few image clean-ups before giving up.
//!
//! Rendering and decoding are CPU work. They are plain synchronous functions;
//! async callers run them in `tokio::task::spawn_blocking` so that a large
//! photo never stalls the runtime's worker threads.

use std::fmt;
use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::{GrayImage, ImageFormat, ImageReader, Luma};
use qrcode::{EcLevel, QrCode};
use rxchain_contracts::model::PrescriptionId;
use rxchain_contracts::privacy::AccessSecret;
use sha3::{Digest, Sha3_256};

/// The payload format version this build writes, and the only one it reads.
pub const PAYLOAD_VERSION: u8 = 1;

/// The text every version-1 payload starts with. `RX` marks an rxchain code
/// and the digits before the colon repeat the version, so that a future
/// format is refused by name rather than as garbage.
pub const PAYLOAD_PREFIX: &str = "RX1:";

/// The RFC 4648 base32 alphabet. All its characters, like the prefix, are in
/// the QR alphanumeric set, which packs 5.5 bits per character instead of the
/// 8 of byte mode and so keeps the code small.
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Bytes covered by the checksum: version, id, secret.
const BODY_LEN: usize = 1 + 16 + 32;

/// Bytes of the checksum: the first bytes of SHA3-256 over the body. Four
/// bytes let one random typo through once in four billion times.
const CHECKSUM_LEN: usize = 4;

/// Bytes in the binary payload.
const RAW_LEN: usize = BODY_LEN + CHECKSUM_LEN;

/// Base32 characters after the prefix: 53 bytes are 424 bits, 85 characters.
const ENCODED_LEN: usize = (RAW_LEN * 8).div_ceil(5);

/// What a prescription QR code carries: the prescription id and the access
/// secret that proves possession of the code.
///
/// `Debug` never shows the secret, and there is deliberately no `Display`:
/// the text form holds the secret too, so it is only produced on purpose,
/// through [`QrPayload::encode`].
#[derive(Clone, PartialEq, Eq)]
pub struct QrPayload {
    /// Which prescription the code is for.
    pub id: PrescriptionId,
    /// The secret that lets the holder claim and read the prescription.
    pub secret: AccessSecret,
}

impl fmt::Debug for QrPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QrPayload")
            .field("id", &self.id)
            .field("secret", &format_args!("<redacted>"))
            .finish()
    }
}

/// Why a text is not a valid prescription code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The text does not start with `RX<version>:`: it is some other code,
    /// for example a product barcode or a web address.
    #[error("this is not an rxchain prescription code")]
    NotRxchain,
    /// An rxchain code of a format this build does not know.
    #[error(
        "this prescription code uses format version {version}, which this service does not support"
    )]
    UnsupportedVersion {
        /// The version as written in the code.
        version: String,
    },
    /// A character outside the code's alphabet, e.g. `0`, `1`, `8` or a space.
    #[error(
        "the prescription code contains an invalid character {character:?} at position {position}"
    )]
    BadCharacter {
        /// The offending character.
        character: char,
        /// Its 1-based position in the code, counting the prefix.
        position: usize,
    },
    /// Characters are missing, usually a scan or copy that stopped early.
    #[error(
        "the prescription code is incomplete: {found} of {expected} characters after the prefix"
    )]
    Truncated {
        /// Characters found after the prefix.
        found: usize,
        /// Characters a complete code has after the prefix.
        expected: usize,
    },
    /// Characters were added, usually two codes run together.
    #[error("the prescription code is too long: {found} characters after the prefix, expected {expected}")]
    TooLong {
        /// Characters found after the prefix.
        found: usize,
        /// Characters a complete code has after the prefix.
        expected: usize,
    },
    /// The checksum does not match: a character was mistyped or misread.
    #[error("the prescription code does not check out; a character was probably mistyped")]
    ChecksumMismatch,
}

impl PayloadError {
    /// A stable machine-readable code for API responses and logs.
    pub fn code(&self) -> &'static str {
        match self {
            PayloadError::NotRxchain => "not_rxchain_code",
            PayloadError::UnsupportedVersion { .. } => "unsupported_version",
            PayloadError::BadCharacter { .. } => "bad_character",
            PayloadError::Truncated { .. } => "truncated",
            PayloadError::TooLong { .. } => "too_long",
            PayloadError::ChecksumMismatch => "checksum_mismatch",
        }
    }
}

impl QrPayload {
    /// Pairs an id with its access secret.
    pub fn new(id: PrescriptionId, secret: AccessSecret) -> Self {
        QrPayload { id, secret }
    }

    /// The text form: `RX1:` followed by 85 base32 characters (RFC 4648
    /// alphabet, upper case, no padding) of version byte, id, secret and a
    /// 4-byte SHA3-256 checksum. 89 characters in all, which fit a version-4
    /// QR code at error correction level M.
    ///
    /// The result contains the secret: treat it like the secret itself.
    pub fn encode(&self) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[0] = PAYLOAD_VERSION;
        raw[1..17].copy_from_slice(self.id.as_bytes());
        raw[17..BODY_LEN].copy_from_slice(self.secret.expose());
        let sum = checksum(&raw[..BODY_LEN]);
        raw[BODY_LEN..].copy_from_slice(&sum);
        let mut out = String::with_capacity(PAYLOAD_PREFIX.len() + ENCODED_LEN);
        out.push_str(PAYLOAD_PREFIX);
        base32_encode(&raw, &mut out);
        out
    }

    /// Parses the text form.
    ///
    /// Surrounding whitespace and lower case are accepted, because handheld
    /// scanners that type into a form add a newline and some follow the
    /// keyboard's caps state. Nothing else is forgiven: a code with an inner
    /// space or a wrong character is refused rather than guessed at.
    pub fn parse(text: &str) -> Result<Self, PayloadError> {
        let text = text.trim();
        let (head, body) = text.split_once(':').ok_or(PayloadError::NotRxchain)?;
        let version = match head.get(..2) {
            Some(rx) if rx.eq_ignore_ascii_case("RX") => &head[2..],
            _ => return Err(PayloadError::NotRxchain),
        };
        // A short run of digits is a version of our format; anything else
        // after `RX` is someone else's code that happens to start alike.
        if version.is_empty() || version.len() > 3 || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PayloadError::NotRxchain);
        }
        if version != "1" {
            return Err(PayloadError::UnsupportedVersion {
                version: version.to_owned(),
            });
        }

        let mut values = Vec::with_capacity(ENCODED_LEN);
        for (i, c) in body.chars().enumerate() {
            let value = base32_value(c).ok_or(PayloadError::BadCharacter {
                character: c,
                position: head.len() + 1 + i + 1,
            })?;
            values.push(value);
        }
        if values.len() < ENCODED_LEN {
            return Err(PayloadError::Truncated {
                found: values.len(),
                expected: ENCODED_LEN,
            });
        }
        if values.len() > ENCODED_LEN {
            return Err(PayloadError::TooLong {
                found: values.len(),
                expected: ENCODED_LEN,
            });
        }

        // The last character carries one bit beyond the 53 bytes. It must be
        // zero: otherwise a typo that only flips that bit would decode to the
        // same bytes and slip past the checksum.
        let raw = base32_decode(&values).ok_or(PayloadError::ChecksumMismatch)?;
        if checksum(&raw[..BODY_LEN]) != raw[BODY_LEN..] {
            return Err(PayloadError::ChecksumMismatch);
        }
        // The checksum covers the version byte, so a mismatch here is a code
        // built by a different format, not a typo.
        if raw[0] != PAYLOAD_VERSION {
            return Err(PayloadError::UnsupportedVersion {
                version: raw[0].to_string(),
            });
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&raw[1..17]);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&raw[17..BODY_LEN]);
        Ok(QrPayload::new(
            PrescriptionId::from_bytes(id),
            AccessSecret::from_bytes(secret),
        ))
    }

    /// Parses what a scanner read: either the bare code or a patient link
    /// made by [`QrPayload::patient_link`] (absolute or relative), whose
    /// fragment is the code.
    ///
    /// This lets a pharmacy scan whichever of the two the patient shows. A
    /// bare code never contains `#`, so whatever follows the last `#` is the
    /// code and is held to the rules of [`QrPayload::parse`].
    pub fn parse_scanned(text: &str) -> Result<Self, PayloadError> {
        match text.trim().rsplit_once('#') {
            Some((_, fragment)) => QrPayload::parse(fragment),
            None => QrPayload::parse(text),
        }
    }

    /// The link for the patient page: `{base_url}/patient/#RX1:...`.
    ///
    /// The code travels in the URL fragment because browsers never send the
    /// fragment to the server in HTTP requests: the secret stays out of
    /// access logs, proxies and `Referer` headers, and the page's script
    /// reads it locally.
    pub fn patient_link(&self, base_url: &str) -> String {
        format!(
            "{}/patient/#{}",
            base_url.trim_end_matches('/'),
            self.encode()
        )
    }
}

/// The checksum of the body: the first bytes of its SHA3-256 hash.
fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha3_256::digest(body);
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

/// Appends the unpadded RFC 4648 base32 form of `bytes` to `out`.
fn base32_encode(bytes: &[u8], out: &mut String) {
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((acc << (5 - bits)) & 31) as usize]));
    }
}

/// The value of one base32 character, accepting lower case.
fn base32_value(c: char) -> Option<u8> {
    match c {
        'A'..='Z' => Some(c as u8 - b'A'),
        'a'..='z' => Some(c as u8 - b'a'),
        '2'..='7' => Some(c as u8 - b'2' + 26),
        _ => None,
    }
}

/// Decodes exactly [`ENCODED_LEN`] base32 values into the raw payload, or
/// `None` when the unused trailing bits are not zero.
fn base32_decode(values: &[u8]) -> Option<[u8; RAW_LEN]> {
    let mut out = [0u8; RAW_LEN];
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut n = 0;
    for &v in values {
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            *out.get_mut(n)? = (acc >> bits) as u8;
            n += 1;
        }
        acc &= (1 << bits) - 1;
    }
    (n == RAW_LEN && acc == 0).then_some(out)
}

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

/// Limits on what [`decode_image`] agrees to read. Both are checked before
/// pixel memory is allocated, so a small file claiming a huge size is cheap
/// to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The largest upload, in bytes.
    pub max_bytes: usize,
    /// The largest image, in pixels (width × height).
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    /// 15 MiB and 40 megapixels: enough for any phone camera's photo. At the
    /// limit one decode holds about 200 MB at its peak (the decoded colour
    /// image plus its grayscale copy), so callers should bound how many
    /// decodes run at once.
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 15 * 1024 * 1024,
            max_pixels: 40_000_000,
        }
    }
}

/// The long side, in pixels, of the working image that most clean-up stages
/// operate on. A code filling a tenth of a photo's width still has about 4
/// pixels per module at this size, and it bounds the cost of each stage.
const WORK_SIDE: u32 = 1600;

/// A second, smaller size: averaging pixels down to it removes more noise
/// and JPEG artefacts, at the cost of codes that are small in the frame.
const SMALL_SIDE: u32 = 1000;

/// Images whose long side is below this are also tried at twice the size,
/// because rqrr needs about 3 pixels per module to find the finder patterns.
const UPSCALE_BELOW_SIDE: u32 = 700;

/// Finds a QR code in a PNG or JPEG image and returns its text.
///
/// The image is first searched as it is, in grayscale, with rqrr's own
/// binarisation, which reads screenshots and good photos. When that finds
/// nothing readable, prepared versions are searched in turn and the first
/// code that decodes wins: scaled down (which also averages away noise),
/// then smoothed and binarised with local thresholds that follow uneven
/// lighting and adapt to low contrast, blur and noise, then inverted for
/// light-on-dark codes. A code that is located but does not decode is also
/// re-read from the grayscale pixels, averaging over each module.
///
/// At most eleven searches run, each on an image at most 1800 pixels on the
/// long side (larger photos are scaled down first), which bounds what one
/// upload can cost: in an optimised build about 0.2 s for a typical photo
/// and under 3 s for one with no code in it. The returned text is whatever
/// the code holds; [`QrPayload::parse_scanned`] checks that it is ours.
///
/// This is CPU work. It is synchronous on purpose: async callers run it in
/// `tokio::task::spawn_blocking` so that it never blocks the runtime.
pub fn decode_image(bytes: &[u8], limits: &DecodeLimits) -> Result<String, QrError> {
    let gray = load_gray(bytes, limits)?;
    let mut images = Images::new(gray);
    let mut found_grid = false;
    for &stage in STAGES {
        let Some(attempt) = images.attempt(stage) else {
            continue;
        };
        match scan(&attempt) {
            Scan::Decoded(text) => {
                tracing::debug!(?stage, "QR code decoded");
                return Ok(text);
            }
            Scan::Unreadable => found_grid = true,
            Scan::Nothing => {}
        }
    }
    Err(if found_grid {
        QrError::Unreadable
    } else {
        QrError::NoQrCode
    })
}

/// Checks the limits, then decodes the image to 8-bit grayscale.
fn load_gray(bytes: &[u8], limits: &DecodeLimits) -> Result<GrayImage, QrError> {
    if bytes.len() > limits.max_bytes {
        return Err(QrError::FileTooLarge {
            max_bytes: limits.max_bytes,
        });
    }
    let reader = |bytes| -> Result<ImageReader<Cursor<&[u8]>>, QrError> {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|_| QrError::NotAnImage)?;
        // Only PNG and JPEG are accepted, whatever formats other crates in
        // the build happen to switch on in `image`: they are what cameras
        // and screenshots produce, and every extra decoder is attack surface.
        match reader.format() {
            Some(ImageFormat::Png | ImageFormat::Jpeg) => Ok(reader),
            _ => Err(QrError::NotAnImage),
        }
    };

    // Reading the header only costs a few bytes; the pixel buffer is not
    // allocated until the dimensions are known to be acceptable.
    let (width, height) = reader(bytes)?
        .into_dimensions()
        .map_err(|e| image_error(e, limits))?;
    if u64::from(width) * u64::from(height) > limits.max_pixels || width == 0 || height == 0 {
        return Err(if width == 0 || height == 0 {
            QrError::NotAnImage
        } else {
            QrError::ImageTooLarge {
                max_pixels: limits.max_pixels,
            }
        });
    }

    let mut reader = reader(bytes)?;
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(width);
    image_limits.max_image_height = Some(height);
    // Eight bytes per pixel covers 16-bit RGBA, the widest layout PNG
    // decodes to, plus room for the decoder's own working memory.
    image_limits.max_alloc = Some(
        (u64::from(width) * u64::from(height))
            .saturating_mul(8)
            .saturating_add(64 << 20),
    );
    reader.limits(image_limits);
    let image = reader.decode().map_err(|e| image_error(e, limits))?;
    Ok(image.into_luma8())
}

/// Maps an `image` error: a limit hit means too large, anything else means
/// the bytes are not a usable image.
fn image_error(e: image::ImageError, limits: &DecodeLimits) -> QrError {
    match e {
        image::ImageError::Limits(_) => QrError::ImageTooLarge {
            max_pixels: limits.max_pixels,
        },
        _ => QrError::NotAnImage,
    }
}

/// One way of preparing the image for a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The decoded image in grayscale, if it is no larger than the working
    /// size: rqrr's cost grows quickly with size and noise, so a larger
    /// photo is only searched scaled down.
    AsIs,
    /// Scaled down to this long side, if larger.
    Downscaled(u32),
    /// Doubled, if small.
    Upscaled,
    /// Binarised by us rather than by rqrr.
    Threshold(Threshold),
}

/// How to binarise an image before handing it to rqrr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Threshold {
    /// Which scaled copy of the image to start from.
    source: Source,
    /// Smoothing radius, in multiples of [`base_radius`].
    blur: usize,
    /// The threshold window's radius is the long side divided by this: 32
    /// spans several modules of a code that fills a third of the frame,
    /// 128 about one module, which also sharpens a blurred code.
    window_div: usize,
    /// When a pixel counts as dark.
    rule: Rule,
    /// Sharpen (unsharp mask) before smoothing, for out-of-focus photos.
    sharpen: bool,
    /// Invert first, for light modules on a dark background (dark-mode
    /// phone screens).
    invert: bool,
}

/// Which scaled copy of the image a threshold stage starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// At most [`WORK_SIDE`] on the long side.
    Work,
    /// At most [`SMALL_SIDE`] on the long side.
    Small,
}

/// When a pixel counts as dark, compared with the mean of its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Darker than the mean by a margin of a few noise levels, so flat
    /// paper never speckles; thins modules slightly.
    Margin,
    /// Darker than the mean where the window holds detail, and by the noise
    /// margin only where it is flat: modules keep their full width and
    /// flat paper stays clean.
    FlatMargin,
    /// Below this percentage of the mean (and 3 levels below it): a
    /// contrast ratio, which ignores how bright the lighting is.
    Ratio(u64),
}

/// Shorthand for the table below.
const fn threshold(
    source: Source,
    blur: usize,
    window_div: usize,
    rule: Rule,
    sharpen: bool,
    invert: bool,
) -> Stage {
    Stage::Threshold(Threshold {
        source,
        blur,
        window_div,
        rule,
        sharpen,
        invert,
    })
}

/// The stages in the order they are tried.
///
/// The order comes from a sweep over 160 synthetic photos combining random
/// rotation, keystone, blur (up to 3.5 px), noise (up to 30 levels), low
/// and uneven contrast and JPEG quality down to 20: the first three stages
/// read the easy ones, and each threshold stage after them adds the most
/// photos that the stages before it missed. The inverted stage comes last
/// because light-on-dark codes are rare.
const STAGES: &[Stage] = &[
    Stage::AsIs,
    Stage::Downscaled(WORK_SIDE),
    Stage::Downscaled(SMALL_SIDE),
    Stage::Upscaled,
    threshold(Source::Work, 1, 64, Rule::FlatMargin, false, false),
    threshold(Source::Work, 1, 128, Rule::Margin, false, false),
    threshold(Source::Small, 1, 32, Rule::Ratio(90), false, false),
    threshold(Source::Work, 1, 32, Rule::Margin, true, false),
    threshold(Source::Work, 2, 32, Rule::FlatMargin, false, false),
    threshold(Source::Work, 1, 128, Rule::FlatMargin, false, false),
    threshold(Source::Work, 1, 64, Rule::FlatMargin, false, true),
];

/// The source image and the scaled copies that several stages share,
/// computed on first use.
struct Images {
    /// The full-size grayscale image.
    original: GrayImage,
    /// At most [`WORK_SIDE`] on the long side.
    work: Option<GrayImage>,
    /// At most [`SMALL_SIDE`] on the long side.
    small: Option<GrayImage>,
}

impl Images {
    fn new(original: GrayImage) -> Self {
        Images {
            original,
            work: None,
            small: None,
        }
    }

    /// The copy of the original that `source` names.
    fn scaled(&mut self, source: Source) -> &GrayImage {
        let (slot, side) = match source {
            Source::Work => (&mut self.work, WORK_SIDE),
            Source::Small => (&mut self.small, SMALL_SIDE),
        };
        let original = &self.original;
        slot.get_or_insert_with(|| downscale(original, side).unwrap_or_else(|| original.clone()))
    }

    /// The image a stage searches, or `None` when the stage does not apply
    /// to this image (it would repeat an earlier one, or cost too much).
    fn attempt(&mut self, stage: Stage) -> Option<Attempt> {
        let (w, h) = self.original.dimensions();
        match stage {
            Stage::AsIs => (w.max(h) <= WORK_SIDE + WORK_SIDE / 8)
                .then(|| Attempt::Gray(self.original.clone())),
            Stage::Downscaled(side) => downscale(&self.original, side).map(Attempt::Gray),
            Stage::Upscaled => {
                (w.max(h) < UPSCALE_BELOW_SIDE).then(|| Attempt::Gray(upscale2(&self.original)))
            }
            Stage::Threshold(t) => {
                let img = self.scaled(t.source);
                let r = base_radius(img);
                let window = (img.width().max(img.height()) as usize / t.window_div).max(4);
                let mut prepared = if t.sharpen {
                    sharpen(img, 3 * r)
                } else {
                    img.clone()
                };
                if t.invert {
                    image::imageops::invert(&mut prepared);
                }
                Some(binarise(&prepared, t.blur * r, window, t.rule))
            }
        }
    }
}

/// One image to search: grayscale, which rqrr binarises itself, or already
/// binarised by one of our thresholds.
enum Attempt {
    /// Luminance, 0 black to 255 white.
    Gray(GrayImage),
    /// `dark` is `true` for a dark pixel; `gray` is the smoothed image it
    /// was thresholded from, kept for [`resample`].
    Binary { gray: GrayImage, dark: Vec<bool> },
}

/// What one search of one image found.
enum Scan {
    /// A code decoded to this text.
    Decoded(String),
    /// At least one code was located, but none decoded.
    Unreadable,
    /// No code was located.
    Nothing,
}

/// Searches one image with rqrr.
fn scan(attempt: &Attempt) -> Scan {
    // rqrr follows geometry it estimates from the pixels, and such decoders
    // have panicked on odd images before. A panic would turn an upload into
    // a failed request instead of a clean error, so it is caught and counted
    // as nothing found; nothing crosses the boundary but the read-only input.
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut prepared = match attempt {
            Attempt::Gray(img) => {
                let (w, raw) = (img.width() as usize, img.as_raw());
                rqrr::PreparedImage::prepare_from_greyscale(w, img.height() as usize, |x, y| {
                    raw[y * w + x]
                })
            }
            Attempt::Binary { gray, dark } => {
                let (w, h) = (gray.width() as usize, gray.height() as usize);
                rqrr::PreparedImage::prepare_from_bitmap(w, h, |x, y| dark[y * w + x])
            }
        };
        let grids = prepared.detect_grids();
        if grids.is_empty() {
            return Scan::Nothing;
        }
        for grid in &grids {
            if let Ok((_, text)) = grid.decode() {
                return Scan::Decoded(text);
            }
        }
        let gray = match attempt {
            Attempt::Gray(img) => img,
            Attempt::Binary { gray, .. } => gray,
        };
        for grid in &grids {
            if let Some(text) = resample(gray, rqrr::BitGrid::size(&grid.grid), &grid.bounds) {
                return Scan::Decoded(text);
            }
        }
        Scan::Unreadable
    }));
    result.unwrap_or(Scan::Nothing)
}

/// The smoothing radius for an image: one pixel per 800 on the long side,
/// which stays well under half a module for any code the image can read
/// (module centres keep their value) while averaging away sensor noise.
fn base_radius(img: &GrayImage) -> usize {
    (img.width().max(img.height()) as usize / 800).max(1)
}

/// Scales `img` down so its long side is `side` pixels, averaging the
/// pixels each output pixel covers; `None` if it is not larger than that
/// already (with some slack, so a near-size image is not resampled for
/// nothing).
fn downscale(img: &GrayImage, side: u32) -> Option<GrayImage> {
    let (w, h) = img.dimensions();
    let long = w.max(h);
    if long <= side + side / 8 {
        return None;
    }
    let nw = (u64::from(w) * u64::from(side) / u64::from(long)).max(1) as u32;
    let nh = (u64::from(h) * u64::from(side) / u64::from(long)).max(1) as u32;
    Some(image::imageops::thumbnail(img, nw, nh))
}

/// Doubles the size of a small image, so that modules of one or two pixels
/// become wide enough for rqrr's finder-pattern search.
fn upscale2(img: &GrayImage) -> GrayImage {
    image::imageops::resize(
        img,
        img.width() * 2,
        img.height() * 2,
        image::imageops::FilterType::Triangle,
    )
}

/// Unsharp masking: adds back 1.5 times the detail finer than `radius`,
/// which steepens the edges of a slightly out-of-focus code.
fn sharpen(img: &GrayImage, radius: usize) -> GrayImage {
    let blurred = box_blur(img, radius);
    let mut out = img.clone();
    for (p, b) in out.as_mut().iter_mut().zip(blurred.as_raw()) {
        let v = (i32::from(*p) * 5 - i32::from(*b) * 3) / 2;
        *p = v.clamp(0, 255) as u8;
    }
    out
}

/// A summed-area table, so that the sum over any rectangle costs four
/// lookups whatever its size.
struct Integral {
    width: usize,
    sums: Vec<u64>,
}

impl Integral {
    /// The table of `f` applied to each pixel: the values themselves, or
    /// their squares for a variance.
    fn new(img: &GrayImage, f: fn(u64) -> u64) -> Self {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut sums = vec![0u64; (w + 1) * (h + 1)];
        let raw = img.as_raw();
        for y in 0..h {
            let mut row = 0u64;
            for x in 0..w {
                row += f(u64::from(raw[y * w + x]));
                sums[(y + 1) * (w + 1) + x + 1] = sums[y * (w + 1) + x + 1] + row;
            }
        }
        Integral { width: w, sums }
    }

    /// The sum over columns `x0..x1` and rows `y0..y1`.
    fn sum(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> u64 {
        let s = |x: usize, y: usize| self.sums[y * (self.width + 1) + x];
        s(x1, y1) + s(x0, y0) - s(x1, y0) - s(x0, y1)
    }
}

/// A box blur of the given radius: a cheap low-pass filter that removes
/// sensor noise and JPEG ringing before thresholding.
fn box_blur(img: &GrayImage, radius: usize) -> GrayImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let integral = Integral::new(img, |v| v);
    let mut out = GrayImage::new(img.width(), img.height());
    for (i, p) in out.as_mut().iter_mut().enumerate() {
        let (x, y) = (i % w, i / w);
        let (x0, x1) = (x.saturating_sub(radius), (x + radius + 1).min(w));
        let (y0, y1) = (y.saturating_sub(radius), (y + radius + 1).min(h));
        let n = ((x1 - x0) * (y1 - y0)) as u64;
        *p = (integral.sum(x0, y0, x1, y1) / n) as u8;
    }
    out
}

/// Estimates the noise level of an image, in grey levels: the median
/// absolute difference between horizontal neighbours. Most pixels of a
/// photo lie in flat areas, where that difference is noise alone, so edges
/// barely move the median; for Gaussian noise it is close to the standard
/// deviation.
fn noise_level(img: &GrayImage) -> u32 {
    let mut histogram = [0u64; 256];
    for row in img.rows() {
        let row: Vec<u8> = row.map(|p| p.0[0]).collect();
        for pair in row.windows(2) {
            histogram[usize::from(pair[0].abs_diff(pair[1]))] += 1;
        }
    }
    let half = histogram.iter().sum::<u64>() / 2;
    let mut seen = 0;
    for (level, count) in histogram.iter().enumerate() {
        seen += count;
        if seen > half {
            return level as u32;
        }
    }
    0
}

/// Binarises with a local threshold: each pixel is compared with the mean of
/// the square window of radius `window` around it, after smoothing with a
/// box of radius `blur`, by `rule`.
///
/// A window spanning a few modules follows a lighting gradient and puts the
/// threshold midway between ink and paper however little contrast there
/// is. The noise margin is measured, not fixed: it is 2.5 times the noise
/// left after smoothing, so clean images keep thin modules and noisy ones
/// do not speckle (speckles break the finder patterns' rings).
fn binarise(img: &GrayImage, blur: usize, window: usize, rule: Rule) -> Attempt {
    // Measured before smoothing, where neighbouring pixels' noise is
    // independent; a box of side k divides it by k.
    let noise = u64::from(noise_level(img));
    let side = 2 * blur as u64 + 1;
    let margin = (5 * noise / (2 * side)).max(2);
    let img = box_blur(img, blur);
    let (w, h) = (img.width() as usize, img.height() as usize);
    let sums = Integral::new(&img, |v| v);
    let squares = (rule == Rule::FlatMargin).then(|| Integral::new(&img, |v| v * v));
    let raw = img.as_raw();
    let mut dark = vec![false; w * h];
    for (i, d) in dark.iter_mut().enumerate() {
        let (x, y) = (i % w, i / w);
        let (x0, x1) = (x.saturating_sub(window), (x + window + 1).min(w));
        let (y0, y1) = (y.saturating_sub(window), (y + window + 1).min(h));
        let n = ((x1 - x0) * (y1 - y0)) as u64;
        let sum = sums.sum(x0, y0, x1, y1);
        // Everything is compared in sums over the window, n times the
        // per-pixel values, to stay in exact integer arithmetic.
        let v = u64::from(raw[i]) * n;
        *d = match rule {
            Rule::Margin => v + margin * n < sum,
            Rule::FlatMargin => {
                // n² times the window's variance, against n² (2·margin)²:
                // a window whose spread is well above the noise holds detail.
                let sum_sq = squares.as_ref().map_or(0, |s| s.sum(x0, y0, x1, y1));
                let spread = (sum_sq * n).saturating_sub(sum * sum);
                let flat = spread <= 4 * margin * margin * n * n;
                v + if flat { margin * n } else { 0 } < sum
            }
            Rule::Ratio(percent) => v * 100 < sum * percent && v + 3 * n < sum,
        };
    }
    Attempt::Binary { gray: img, dark }
}

/// Reads a grid that rqrr located but could not decode, from the grayscale
/// image instead of rqrr's binarised one.
///
/// rqrr reads each module from one binarised pixel at its centre, so noise,
/// blur or an unlucky threshold flips modules. Here each module is the mean
/// of nine samples spread over its central half, and it is compared with a
/// threshold chosen from the module values themselves: first one for the
/// whole code (Otsu's), then one local to each module's neighbourhood, which
/// follows a lighting gradient across the code.
fn resample(gray: &GrayImage, size: usize, bounds: &[rqrr::Point; 4]) -> Option<String> {
    if !(21..=177).contains(&size) {
        return None;
    }
    // rqrr reports the bounds at grid coordinates 0 and size + 1.
    let far = size as f64 + 1.0;
    let grid_corners = [(0.0, 0.0), (far, 0.0), (far, far), (0.0, far)];
    let image_corners = bounds.map(|p| (f64::from(p.x), f64::from(p.y)));
    let to_image = Homography::between(grid_corners, image_corners)?;

    let (w, h) = (gray.width() as f64, gray.height() as f64);
    let mut modules = vec![0f64; size * size];
    for (i, m) in modules.iter_mut().enumerate() {
        let (gx, gy) = ((i % size) as f64 + 0.5, (i / size) as f64 + 0.5);
        let mut sum = 0.0;
        for dy in [-0.25, 0.0, 0.25] {
            for dx in [-0.25, 0.0, 0.25] {
                let (x, y) = to_image.map(gx + dx, gy + dy);
                if !(0.0..w - 1.0).contains(&x) || !(0.0..h - 1.0).contains(&y) {
                    return None;
                }
                sum += bilinear(gray, x, y);
            }
        }
        *m = sum / 9.0;
    }

    let global = otsu(&modules);
    let local = |i: usize| {
        let (x, y) = (i % size, i / size);
        let (x0, x1) = (x.saturating_sub(4), (x + 5).min(size));
        let (y0, y1) = (y.saturating_sub(4), (y + 5).min(size));
        let mut sum = 0.0;
        for yy in y0..y1 {
            for xx in x0..x1 {
                sum += modules[yy * size + xx];
            }
        }
        sum / ((x1 - x0) * (y1 - y0)) as f64
    };
    let local_thresholds: Vec<f64> = (0..modules.len()).map(local).collect();
    for threshold in [&vec![global; modules.len()], &local_thresholds] {
        let grid = rqrr::SimpleGrid::from_func(size, |x, y| {
            modules[y * size + x] < threshold[y * size + x]
        });
        if let Ok((_, text)) = rqrr::Grid::new(grid).decode() {
            return Some(text);
        }
    }
    None
}

/// The threshold that best splits `values` into two classes (Otsu's
/// method), searched over the values' own range.
fn otsu(values: &[f64]) -> f64 {
    let mut histogram = [0u32; 256];
    for &v in values {
        histogram[v.clamp(0.0, 255.0) as usize] += 1;
    }
    let total = values.len() as f64;
    let sum_all: f64 = histogram
        .iter()
        .enumerate()
        .map(|(v, &c)| v as f64 * f64::from(c))
        .sum();
    let (mut weight_low, mut sum_low) = (0.0, 0.0);
    let (mut best, mut best_score) = (128.0, -1.0);
    for (v, &c) in histogram.iter().enumerate() {
        weight_low += f64::from(c);
        sum_low += v as f64 * f64::from(c);
        let weight_high = total - weight_low;
        if weight_low == 0.0 || weight_high == 0.0 {
            continue;
        }
        let (mean_low, mean_high) = (sum_low / weight_low, (sum_all - sum_low) / weight_high);
        let score = weight_low * weight_high * (mean_low - mean_high).powi(2);
        if score > best_score {
            best_score = score;
            best = v as f64 + 0.5;
        }
    }
    best
}

/// The luminance at a fractional position, interpolated from the four
/// nearest pixels. The caller keeps the position inside the image.
fn bilinear(img: &GrayImage, x: f64, y: f64) -> f64 {
    let (x0, y0) = (x.floor() as u32, y.floor() as u32);
    let (fx, fy) = (x - x.floor(), y - y.floor());
    let p = |x: u32, y: u32| f64::from(img.get_pixel(x, y).0[0]);
    let top = p(x0, y0) * (1.0 - fx) + p(x0 + 1, y0) * fx;
    let bottom = p(x0, y0 + 1) * (1.0 - fx) + p(x0 + 1, y0 + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// A plane projective transform, the map from a QR code's module grid to
/// its image under any camera angle.
struct Homography([f64; 8]);

impl Homography {
    /// The transform taking each `from` corner to the matching `to` corner,
    /// or `None` when the corners are degenerate (three on a line).
    fn between(from: [(f64, f64); 4], to: [(f64, f64); 4]) -> Option<Self> {
        let mut a = [[0f64; 9]; 8];
        for i in 0..4 {
            let ((x, y), (u, v)) = (from[i], to[i]);
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        // Gauss-Jordan elimination with partial pivoting on the augmented matrix.
        for col in 0..8 {
            let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
            if a[pivot][col].abs() < 1e-9 {
                return None;
            }
            a.swap(col, pivot);
            for row in 0..8 {
                if row != col {
                    let pivot_row = a[col];
                    let f = a[row][col] / pivot_row[col];
                    for (x, p) in a[row][col..].iter_mut().zip(&pivot_row[col..]) {
                        *x -= f * p;
                    }
                }
            }
        }
        let mut h = [0f64; 8];
        for (i, v) in h.iter_mut().enumerate() {
            *v = a[i][8] / a[i][i];
        }
        h.iter().all(|v| v.is_finite()).then_some(Homography(h))
    }

    fn map(&self, x: f64, y: f64) -> (f64, f64) {
        let h = &self.0;
        let w = h[6] * x + h[7] * y + 1.0;
        (
            (h[0] * x + h[1] * y + h[2]) / w,
            (h[3] * x + h[4] * y + h[5]) / w,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> QrPayload {
        QrPayload::new(
            PrescriptionId::from_bytes([7; 16]),
            AccessSecret::from_bytes([42; 32]),
        )
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        let cases: [(&[u8], &str); 6] = [
            (b"f", "MY"),
            (b"fo", "MZXQ"),
            (b"foo", "MZXW6"),
            (b"foob", "MZXW6YQ"),
            (b"fooba", "MZXW6YTB"),
            (b"foobar", "MZXW6YTBOI"),
        ];
        for (input, expected) in cases {
            let mut out = String::new();
            base32_encode(input, &mut out);
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn encoded_form_has_the_documented_length_and_fits_version_4_m() {
        let text = payload().encode();
        assert_eq!(text.len(), PAYLOAD_PREFIX.len() + ENCODED_LEN);
        assert_eq!(text.len(), 89);
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).unwrap();
        assert_eq!(code.version(), qrcode::Version::Normal(4));
    }

    #[test]
    fn resampling_reads_a_located_grid() {
        let text = payload().encode();
        let png = render_png(&text, 5).unwrap();
        let gray = image::load_from_memory(&png).unwrap().into_luma8();
        // A perspective view, so that the homography is exercised.
        let (w, h) = gray.dimensions();
        let view = Homography::between(
            [(0.0, 0.0), (600.0, 0.0), (600.0, 500.0), (0.0, 500.0)],
            [
                (0.0, 0.0),
                (f64::from(w), 0.0),
                (f64::from(w), f64::from(h)),
                (0.0, f64::from(h)),
            ],
        )
        .unwrap();
        let skewed = GrayImage::from_fn(600, 500, |x, y| {
            let (u, v) = view.map(f64::from(x), f64::from(y));
            Luma([bilinear(
                &gray,
                u.min(f64::from(w) - 1.01),
                v.min(f64::from(h) - 1.01),
            ) as u8])
        });
        let (sw, raw) = (skewed.width() as usize, skewed.as_raw());
        let mut prepared =
            rqrr::PreparedImage::prepare_from_greyscale(sw, 500, |x, y| raw[y * sw + x]);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1);
        let size = rqrr::BitGrid::size(&grids[0].grid);
        assert_eq!(
            resample(&skewed, size, &grids[0].bounds).as_deref(),
            Some(text.as_str())
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let p = payload();
        let shown = format!("{p:?}");
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&hex::encode(p.secret.expose())));
        assert!(!shown.contains("42"));
    }
}
