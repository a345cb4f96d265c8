//! Image clean-ups tried before giving up on a photo: scaling, unsharp
//! masking, box blur and local-threshold binarisation.

use image::GrayImage;

use super::{Attempt, Rule};

/// The smoothing radius for an image: one pixel per 800 on the long side,
/// which stays well under half a module for any code the image can read
/// (module centres keep their value) while averaging away sensor noise.
pub(super) fn base_radius(img: &GrayImage) -> usize {
    (img.width().max(img.height()) as usize / 800).max(1)
}

/// Scales `img` down so its long side is `side` pixels, averaging the
/// pixels each output pixel covers; `None` if it is not larger than that
/// already (with some slack, so a near-size image is not resampled for
/// nothing).
pub(super) fn downscale(img: &GrayImage, side: u32) -> Option<GrayImage> {
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
pub(super) fn upscale2(img: &GrayImage) -> GrayImage {
    image::imageops::resize(
        img,
        img.width() * 2,
        img.height() * 2,
        image::imageops::FilterType::Triangle,
    )
}

/// Unsharp masking: adds back 1.5 times the detail finer than `radius`,
/// which steepens the edges of a slightly out-of-focus code.
pub(super) fn sharpen(img: &GrayImage, radius: usize) -> GrayImage {
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
pub(super) fn binarise(img: &GrayImage, blur: usize, window: usize, rule: Rule) -> Attempt {
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
