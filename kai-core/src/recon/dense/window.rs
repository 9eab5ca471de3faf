//! Window sums by integral images, so the cost of a window statistic does not depend on
//! the window's size.

/// Sums of `CHANNELS` per-pixel values over square windows, from one integral image.
pub(super) struct WindowSums<const CHANNELS: usize> {
    width: usize,
    /// Row-major `(width + 1) x (height + 1)` prefix sums, channels interleaved.
    table: Vec<[f64; CHANNELS]>,
}

impl<const CHANNELS: usize> WindowSums<CHANNELS> {
    /// Builds the integral image of the values `value(index)` of a `width x height` image.
    pub fn new(width: usize, height: usize, value: impl Fn(usize) -> [f64; CHANNELS]) -> Self {
        let stride = width + 1;
        let mut table = vec![[0.0; CHANNELS]; stride * (height + 1)];
        for y in 0..height {
            let mut row = [0.0; CHANNELS];
            for x in 0..width {
                let v = value(y * width + x);
                for c in 0..CHANNELS {
                    row[c] += v[c];
                }
                let above = table[y * stride + x + 1];
                let cell = &mut table[(y + 1) * stride + x + 1];
                for c in 0..CHANNELS {
                    cell[c] = above[c] + row[c];
                }
            }
        }
        Self { width, table }
    }

    /// Returns the sums over the window of radius `radius` centred on `(x, y)`, which must
    /// lie inside the image.
    #[inline]
    pub fn window(&self, x: usize, y: usize, radius: usize) -> [f64; CHANNELS] {
        let stride = self.width + 1;
        let (x0, x1) = (x - radius, x + radius + 1);
        let (y0, y1) = (y - radius, y + radius + 1);
        let (a, b) = (self.table[y0 * stride + x0], self.table[y0 * stride + x1]);
        let (c, d) = (self.table[y1 * stride + x0], self.table[y1 * stride + x1]);
        std::array::from_fn(|k| d[k] - b[k] - c[k] + a[k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sums_match_direct_sums() {
        let (w, h) = (9, 7);
        let values: Vec<f64> = (0..w * h).map(|i| ((i * 37) % 11) as f64 - 3.0).collect();
        let sums = WindowSums::<2>::new(w, h, |i| [values[i], values[i] * values[i]]);
        for radius in 0..3 {
            for y in radius..h - radius {
                for x in radius..w - radius {
                    let mut direct = [0.0; 2];
                    for yy in y - radius..=y + radius {
                        for xx in x - radius..=x + radius {
                            let v = values[yy * w + xx];
                            direct[0] += v;
                            direct[1] += v * v;
                        }
                    }
                    let got = sums.window(x, y, radius);
                    assert!((got[0] - direct[0]).abs() < 1e-9, "{x},{y},{radius}");
                    assert!((got[1] - direct[1]).abs() < 1e-9, "{x},{y},{radius}");
                }
            }
        }
    }
}
