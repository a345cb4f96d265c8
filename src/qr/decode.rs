//! Finding and reading a code in an uploaded photo with rqrr, with a fixed
//! sequence of image clean-ups to fall back on when the photo as it is does
//! not read.
//!
//! The clean-ups themselves (scaling, smoothing, local thresholds) are in
//! `filters`; re-reading a located but undecodable grid from the grayscale
//! pixels is in `resample`.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::{GrayImage, ImageFormat, ImageReader};

use super::QrError;
use filters::{base_radius, binarise, downscale, sharpen, upscale2};
use resample::resample;

mod filters;
mod resample;

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
