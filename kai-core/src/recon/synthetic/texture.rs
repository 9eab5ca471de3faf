//! Procedural surface textures: smooth colour noise under layers of hashed shapes (discs,
//! rotated squares, rings) at several scales, so every surface has many corners and blobs
//! that a feature detector finds and that look different from place to place.
//!
//! A texture is a pure function of its seed and the surface coordinates (world units), so
//! any point can be sampled at any resolution without storing texels.

/// Shape layers from coarse to fine: the cell size in world units and the probability
/// that a cell contains a shape. Finer layers paint over coarser ones.
const SHAPE_LAYERS: [(f64, f64); 4] = [(0.36, 0.8), (0.18, 0.8), (0.09, 0.75), (0.045, 0.7)];

/// Cell sizes of the smooth colour noise, in world units, with their amplitudes.
const NOISE_OCTAVES: [(f64, f64); 2] = [(0.7, 0.22), (0.25, 0.12)];

/// A layer fades out as its cells shrink from this many pixels wide...
const FADE_START_PX: f64 = 6.0;
/// ...to this many, so shapes smaller than the pixel grid can resolve do not alias.
const FADE_END_PX: f64 = 3.0;

/// The albedo of one surface, as linear RGB in `[0, 1]`.
#[derive(Debug, Clone, Copy)]
pub(super) enum Texture {
    /// Hashed shapes over colour noise, seeded.
    Rich {
        /// Seed of every hash the texture draws.
        seed: u64,
        /// The mean colour the noise varies around.
        base: [f64; 3],
    },
    /// One colour everywhere.
    Flat([f64; 3]),
}

impl Texture {
    /// A rich texture whose base colour is drawn from `seed`.
    pub(super) fn rich(seed: u64) -> Self {
        let h = mix(seed ^ 0x5bd1_e995_1234_5678);
        let base = [
            0.3 + 0.4 * unit(h, 0),
            0.3 + 0.4 * unit(h, 1),
            0.3 + 0.4 * unit(h, 2),
        ];
        Self::Rich { seed, base }
    }

    /// The albedo at surface coordinates `(u, v)`; `footprint` is the width of one image
    /// pixel on the surface there (world units), which fades out shapes too small to
    /// resolve.
    pub(super) fn albedo(&self, u: f64, v: f64, footprint: f64) -> [f64; 3] {
        let (seed, base) = match *self {
            Texture::Flat(colour) => return colour,
            Texture::Rich { seed, base } => (seed, base),
        };

        let mut colour = base;
        for (octave, &(cell, amplitude)) in NOISE_OCTAVES.iter().enumerate() {
            let stream = seed ^ (octave as u64 + 1).wrapping_mul(0x9e37_79b9);
            let noise = value_noise(stream, u / cell, v / cell);
            for (value, channel_noise) in colour.iter_mut().zip(noise) {
                *value += amplitude * (2.0 * channel_noise - 1.0);
            }
        }

        for (layer, &(cell, probability)) in SHAPE_LAYERS.iter().enumerate() {
            let pixels_per_cell = cell / footprint.max(f64::MIN_POSITIVE);
            let weight =
                ((pixels_per_cell - FADE_END_PX) / (FADE_START_PX - FADE_END_PX)).clamp(0.0, 1.0);
            if weight <= 0.0 {
                continue;
            }
            if let Some(shape_colour) = shape_at(seed, layer as u64, cell, probability, u, v) {
                for (value, shape_value) in colour.iter_mut().zip(shape_colour) {
                    *value += weight * (shape_value - *value);
                }
            }
        }
        colour.map(|value| value.clamp(0.0, 1.0))
    }
}

/// The colour of the shape of `layer` that covers `(u, v)`, if any. Each cell contains at
/// most one shape, kept inside the cell so only one cell needs testing.
fn shape_at(
    seed: u64,
    layer: u64,
    cell: f64,
    probability: f64,
    u: f64,
    v: f64,
) -> Option<[f64; 3]> {
    let (cell_u, cell_v) = ((u / cell).floor(), (v / cell).floor());
    let h = cell_hash(seed, layer, cell_u as i64, cell_v as i64);
    if fraction16(h, 0) >= probability {
        return None;
    }
    // Radius and centre as fractions of the cell; the centre leaves room for the radius.
    let radius = 0.18 + 0.27 * fraction16(h, 1);
    let centre_u = radius + (1.0 - 2.0 * radius) * fraction16(h, 2);
    let centre_v = radius + (1.0 - 2.0 * radius) * fraction16(h, 3);
    let du = u / cell - cell_u - centre_u;
    let dv = v / cell - cell_v - centre_v;

    // A second hash draws the shape's kind, orientation and colour.
    let g = mix(h);
    let inside = match g >> 62 {
        0 | 1 => du * du + dv * dv <= radius * radius,
        2 => {
            let angle = std::f64::consts::FRAC_PI_2 * fraction16(g, 0);
            let (sin, cos) = angle.sin_cos();
            let half = 0.72 * radius;
            (cos * du + sin * dv).abs() <= half && (-sin * du + cos * dv).abs() <= half
        }
        _ => {
            let distance_squared = du * du + dv * dv;
            let inner = 0.55 * radius;
            distance_squared <= radius * radius && distance_squared >= inner * inner
        }
    };
    inside.then(|| {
        [
            0.03 + 0.94 * fraction16(g, 1),
            0.03 + 0.94 * fraction16(g, 2),
            0.03 + 0.94 * fraction16(g, 3),
        ]
    })
}

/// Smooth value noise in `[0, 1]` for three channels at once: hashed values at integer
/// lattice points, blended with a smoothstep.
fn value_noise(stream: u64, x: f64, y: f64) -> [f64; 3] {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (smoothstep(x - x0), smoothstep(y - y0));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let corners = [
        cell_hash(stream, 0xff, ix, iy),
        cell_hash(stream, 0xff, ix + 1, iy),
        cell_hash(stream, 0xff, ix, iy + 1),
        cell_hash(stream, 0xff, ix + 1, iy + 1),
    ];
    std::array::from_fn(|channel| {
        let [a, b, c, d] = corners.map(|h| fraction16(h, channel as u32));
        let top = a + fx * (b - a);
        let bottom = c + fx * (d - c);
        top + fy * (bottom - top)
    })
}

fn smoothstep(t: f64) -> f64 {
    t * t * (3.0 - 2.0 * t)
}

/// The hash of one lattice cell of one layer.
pub(super) fn cell_hash(seed: u64, layer: u64, x: i64, y: i64) -> u64 {
    let h = mix(seed
        ^ layer.wrapping_mul(0xd6e8_feb8_6659_fd93)
        ^ (x as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    mix(h ^ (y as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f))
}

/// The `index`-th (0–3) 16-bit slice of hash `h` as a number in `[0, 1)`.
fn fraction16(h: u64, index: u32) -> f64 {
    ((h >> (16 * index)) & 0xffff) as f64 / 65536.0
}

/// The `index`-th uniform number in `[0, 1)` derived from hash `h`.
pub(super) fn unit(h: u64, index: u64) -> f64 {
    let bits = mix(h.wrapping_add(index.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// The splitmix64 finaliser: a bijective 64-bit mix with good avalanche.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rich_texture_varies_and_stays_in_range() {
        let texture = Texture::rich(7);
        let mut distinct = std::collections::HashSet::new();
        for i in 0..400 {
            let (u, v) = (f64::from(i % 20) * 0.037, f64::from(i / 20) * 0.041);
            let colour = texture.albedo(u, v, 0.001);
            assert!(colour.iter().all(|c| (0.0..=1.0).contains(c)), "{colour:?}");
            distinct.insert(colour.map(|c| (c * 255.0) as u8));
        }
        assert!(
            distinct.len() > 200,
            "only {} distinct colours",
            distinct.len()
        );
    }

    #[test]
    fn large_footprint_fades_shapes() {
        let texture = Texture::rich(3);
        // With pixels wider than the coarsest cell every shape fades and only the smooth
        // noise remains, so neighbouring samples differ little.
        let a = texture.albedo(0.50, 0.50, 1.0);
        let b = texture.albedo(0.51, 0.50, 1.0);
        let difference: f64 = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum();
        assert!(difference < 0.05, "{a:?} vs {b:?}");
    }

    #[test]
    fn unit_is_in_range() {
        for i in 0..1000 {
            let value = unit(mix(i), i);
            assert!((0.0..1.0).contains(&value));
        }
    }
}
