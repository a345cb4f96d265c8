//! Re-reading a grid that rqrr located but could not decode, from the
//! grayscale pixels through the grid's perspective transform.

use image::GrayImage;

/// Reads a grid that rqrr located but could not decode, from the grayscale
/// image instead of rqrr's binarised one.
///
/// rqrr reads each module from one binarised pixel at its centre, so noise,
/// blur or an unlucky threshold flips modules. Here each module is the mean
/// of nine samples spread over its central half, and it is compared with a
/// threshold chosen from the module values themselves: first one for the
/// whole code (Otsu's), then one local to each module's neighbourhood, which
/// follows a lighting gradient across the code.
pub(super) fn resample(gray: &GrayImage, size: usize, bounds: &[rqrr::Point; 4]) -> Option<String> {
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
    use image::{GrayImage, Luma};
    use rxchain_contracts::model::PrescriptionId;
    use rxchain_contracts::privacy::AccessSecret;

    use super::*;
    use crate::qr::{render_png, QrPayload};

    fn payload() -> QrPayload {
        QrPayload::new(
            PrescriptionId::from_bytes([7; 16]),
            AccessSecret::from_bytes([42; 32]),
        )
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
}
