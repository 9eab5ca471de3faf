//! The scene's geometry: boxes standing on a ground plane, an optional back wall, and ray
//! intersection with all of them.
//!
//! World frame: z points up, the ground is the plane z = 0, and the objects stand around
//! the origin. Lengths are in world units (the main box is about one unit wide).

use nalgebra::{Rotation3, Vector3};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::texture::{Texture, mix};

/// Texture index of the ground.
const GROUND: usize = 0;
/// Texture index of the back wall.
const WALL: usize = 1;
/// Texture index of the first box face; each box has six.
const FIRST_BOX_FACE: usize = 2;

/// The back wall is the plane y = `WALL_DISTANCE`, facing -y, of this half-width and
/// height. It is behind every camera of the default orbit (horizontal radius below 5).
/// NOTE: with a large `distance_ratio` a camera on the +y side can end up behind the wall,
/// and then sees through it because the wall is one-sided.
const WALL_DISTANCE: f64 = 7.0;
const WALL_HALF_WIDTH: f64 = 12.0;
const WALL_HEIGHT: f64 = 6.0;

/// Ground points sampled as ground truth lie within this distance of the origin, where
/// every camera of the orbit rig sees the ground well.
const GROUND_SAMPLE_RADIUS: f64 = 2.5;

/// A box standing on the ground, rotated about the vertical axis.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cuboid {
    /// Centre in world coordinates.
    pub center: Vector3<f64>,
    /// Half the side lengths along the box's own axes.
    pub half: Vector3<f64>,
    /// World-to-box rotation (about z).
    pub to_local: Rotation3<f64>,
}

/// A ray's first intersection with the scene.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hit {
    /// Distance along the unit ray direction.
    pub distance: f64,
    /// Outward unit normal in world coordinates.
    pub normal: Vector3<f64>,
    /// Which texture the surface carries.
    pub texture: usize,
    /// Surface coordinates for the texture, in world units.
    pub uv: (f64, f64),
}

/// Every surface of a synthetic scene.
#[derive(Debug, Clone)]
pub(super) struct World {
    pub boxes: Vec<Cuboid>,
    pub wall: bool,
    pub textures: Vec<Texture>,
}

impl World {
    /// Lays out three boxes from `rng`: a main box at the origin and two smaller ones
    /// beside it, each with its own rotation and textures.
    pub(super) fn new(rng: &mut ChaCha8Rng, wall: bool, flat_colour: Option<[f64; 3]>) -> Self {
        let mut boxes = Vec::new();
        let main_half = Vector3::new(
            rng.random_range(0.40..0.50),
            rng.random_range(0.32..0.42),
            rng.random_range(0.35..0.50),
        );
        boxes.push(cuboid(
            Vector3::zeros(),
            main_half,
            rng.random_range(0.0..1.5),
        ));

        let first_angle: f64 = rng.random_range(0.0..std::f64::consts::TAU);
        for index in 0..2 {
            let angle = first_angle + f64::from(index) * rng.random_range(2.0..2.8);
            let half = Vector3::new(
                rng.random_range(0.15..0.25),
                rng.random_range(0.15..0.25),
                rng.random_range(0.12..0.30),
            );
            let offset = Vector3::new(angle.cos(), angle.sin(), 0.0) * rng.random_range(0.95..1.15);
            boxes.push(cuboid(offset, half, rng.random_range(0.0..1.5)));
        }

        let texture_count = FIRST_BOX_FACE + 6 * boxes.len();
        let texture_seed: u64 = rng.random();
        let textures = (0..texture_count)
            .map(|index| match flat_colour {
                Some(colour) => Texture::Flat(colour),
                None => Texture::rich(mix(texture_seed ^ index as u64)),
            })
            .collect();
        Self {
            boxes,
            wall,
            textures,
        }
    }

    /// The centre of the objects' bounding box, where the cameras aim.
    pub(super) fn object_center(&self) -> Vector3<f64> {
        let top = self
            .boxes
            .iter()
            .map(|b| b.center.z + b.half.z)
            .fold(0.0, f64::max);
        Vector3::new(0.0, 0.0, 0.5 * top)
    }

    /// The first surface that the ray from `origin` along the unit vector `direction`
    /// meets, if any.
    pub(super) fn intersect(&self, origin: &Vector3<f64>, direction: &Vector3<f64>) -> Option<Hit> {
        let mut best: Option<Hit> = None;
        let mut consider = |hit: Option<Hit>| {
            if let Some(hit) = hit
                && best.is_none_or(|b| hit.distance < b.distance)
            {
                best = Some(hit);
            }
        };
        consider(intersect_ground(origin, direction));
        if self.wall {
            consider(intersect_wall(origin, direction));
        }
        for (index, cuboid) in self.boxes.iter().enumerate() {
            consider(cuboid.intersect(origin, direction, FIRST_BOX_FACE + 6 * index));
        }
        best
    }

    /// Draws a point uniformly by area from the surfaces that cameras see: the ground
    /// near the objects (outside the boxes' footprints), the boxes' tops and sides, and the
    /// wall's lower part when there is one.
    pub(super) fn sample_surface_point(&self, rng: &mut ChaCha8Rng) -> Vector3<f64> {
        let ground_area = std::f64::consts::PI * GROUND_SAMPLE_RADIUS * GROUND_SAMPLE_RADIUS;
        let wall_area = if self.wall {
            2.0 * WALL_HALF_WIDTH * 3.0
        } else {
            0.0
        };
        let face_areas: Vec<[f64; 5]> = self.boxes.iter().map(Cuboid::visible_face_areas).collect();
        let box_area: f64 = face_areas.iter().flatten().sum();
        let total = ground_area + wall_area + box_area;

        let mut pick = rng.random_range(0.0..total);
        if pick < ground_area {
            return self.sample_ground(rng);
        }
        pick -= ground_area;
        if pick < wall_area {
            let x = rng.random_range(-WALL_HALF_WIDTH..WALL_HALF_WIDTH);
            return Vector3::new(x, WALL_DISTANCE, rng.random_range(0.0..3.0));
        }
        pick -= wall_area;
        for (cuboid, areas) in self.boxes.iter().zip(&face_areas) {
            for (face, &area) in areas.iter().enumerate() {
                if pick < area {
                    return cuboid.sample_face(face, rng);
                }
                pick -= area;
            }
        }
        // Rounding left `pick` just past the last face: use the top of the main box.
        self.boxes[0].sample_face(0, rng)
    }

    fn sample_ground(&self, rng: &mut ChaCha8Rng) -> Vector3<f64> {
        loop {
            let x = rng.random_range(-GROUND_SAMPLE_RADIUS..GROUND_SAMPLE_RADIUS);
            let y = rng.random_range(-GROUND_SAMPLE_RADIUS..GROUND_SAMPLE_RADIUS);
            let point = Vector3::new(x, y, 0.0);
            let on_disc = x * x + y * y <= GROUND_SAMPLE_RADIUS * GROUND_SAMPLE_RADIUS;
            if on_disc && !self.boxes.iter().any(|b| b.covers_ground(&point)) {
                return point;
            }
        }
    }
}

fn cuboid(center_on_ground: Vector3<f64>, half: Vector3<f64>, yaw: f64) -> Cuboid {
    Cuboid {
        center: Vector3::new(center_on_ground.x, center_on_ground.y, half.z),
        half,
        to_local: Rotation3::from_axis_angle(&Vector3::z_axis(), -yaw),
    }
}

fn intersect_ground(origin: &Vector3<f64>, direction: &Vector3<f64>) -> Option<Hit> {
    if direction.z >= -1e-12 || origin.z <= 0.0 {
        return None;
    }
    let distance = -origin.z / direction.z;
    let point = origin + direction * distance;
    Some(Hit {
        distance,
        normal: Vector3::z(),
        texture: GROUND,
        uv: (point.x, point.y),
    })
}

fn intersect_wall(origin: &Vector3<f64>, direction: &Vector3<f64>) -> Option<Hit> {
    if direction.y <= 1e-12 || origin.y >= WALL_DISTANCE {
        return None;
    }
    let distance = (WALL_DISTANCE - origin.y) / direction.y;
    let point = origin + direction * distance;
    if point.x.abs() > WALL_HALF_WIDTH || point.z < 0.0 || point.z > WALL_HEIGHT {
        return None;
    }
    Some(Hit {
        distance,
        normal: -Vector3::y(),
        texture: WALL,
        uv: (point.x, point.z),
    })
}

impl Cuboid {
    /// Slab-method intersection in the box's own frame. Faces are numbered 0..6 as
    /// +x, -x, +y, -y, +z, -z and take textures `first_texture + face`.
    fn intersect(
        &self,
        origin: &Vector3<f64>,
        direction: &Vector3<f64>,
        first_texture: usize,
    ) -> Option<Hit> {
        let local_origin = self.to_local * (origin - self.center);
        let local_direction = self.to_local * direction;
        let mut near = f64::NEG_INFINITY;
        let mut far = f64::INFINITY;
        let mut near_axis = 0;
        for axis in 0..3 {
            let (o, d, h) = (local_origin[axis], local_direction[axis], self.half[axis]);
            if d.abs() < 1e-15 {
                if o.abs() > h {
                    return None;
                }
                continue;
            }
            let (mut t0, mut t1) = ((-h - o) / d, (h - o) / d);
            if t0 > t1 {
                std::mem::swap(&mut t0, &mut t1);
            }
            if t0 > near {
                near = t0;
                near_axis = axis;
            }
            far = far.min(t1);
        }
        if near > far || near <= 0.0 {
            return None;
        }
        let local_point = local_origin + local_direction * near;
        let positive = local_direction[near_axis] < 0.0;
        let mut local_normal = Vector3::zeros();
        local_normal[near_axis] = if positive { 1.0 } else { -1.0 };
        let face = 2 * near_axis + usize::from(!positive);
        let (a, b) = match near_axis {
            0 => (local_point.y, local_point.z),
            1 => (local_point.x, local_point.z),
            _ => (local_point.x, local_point.y),
        };
        Some(Hit {
            distance: near,
            normal: self.to_local.inverse() * local_normal,
            texture: first_texture + face,
            uv: (a, b),
        })
    }

    /// Areas of the top and the four sides, in that order; the bottom rests on the ground.
    fn visible_face_areas(&self) -> [f64; 5] {
        let h = self.half;
        let top = 4.0 * h.x * h.y;
        let x_side = 4.0 * h.y * h.z;
        let y_side = 4.0 * h.x * h.z;
        [top, x_side, x_side, y_side, y_side]
    }

    /// A uniform point on face `face` of [`Self::visible_face_areas`].
    fn sample_face(&self, face: usize, rng: &mut ChaCha8Rng) -> Vector3<f64> {
        let h = self.half;
        let mut local = Vector3::new(
            rng.random_range(-h.x..h.x),
            rng.random_range(-h.y..h.y),
            rng.random_range(-h.z..h.z),
        );
        match face {
            0 => local.z = h.z,
            1 => local.x = h.x,
            2 => local.x = -h.x,
            3 => local.y = h.y,
            _ => local.y = -h.y,
        }
        self.center + self.to_local.inverse() * local
    }

    fn covers_ground(&self, point: &Vector3<f64>) -> bool {
        let local = self.to_local * (point - self.center);
        local.x.abs() <= self.half.x && local.y.abs() <= self.half.y
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn ray_hits_box_top_before_ground() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let world = World::new(&mut rng, false, None);
        let top = world.boxes[0].center.z + world.boxes[0].half.z;
        let origin = Vector3::new(0.0, 0.0, 5.0);
        let hit = world.intersect(&origin, &-Vector3::z()).expect("hit");
        assert!((hit.distance - (5.0 - top)).abs() < 1e-12, "{hit:?}");
        assert!((hit.normal - Vector3::z()).norm() < 1e-12);
    }

    #[test]
    fn box_intersection_matches_ray_marching() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let world = World::new(&mut rng, false, None);
        let cuboid = world.boxes[0];
        let inside = |p: &Vector3<f64>| {
            let local = cuboid.to_local * (p - cuboid.center);
            (0..3).all(|axis| local[axis].abs() <= cuboid.half[axis])
        };
        let mut hits = 0;
        for _ in 0..300 {
            let origin = Vector3::new(
                rng.random_range(-4.0..4.0),
                rng.random_range(-4.0..4.0),
                rng.random_range(0.0..3.0),
            );
            if inside(&origin) {
                continue;
            }
            let aim = cuboid.center
                + Vector3::new(
                    rng.random_range(-0.6..0.6),
                    rng.random_range(-0.6..0.6),
                    rng.random_range(-0.6..0.6),
                );
            let direction = (aim - origin).normalize();
            // March in steps of 1e-4 to the first point inside the box.
            let marched = (1..100_000)
                .map(|step| f64::from(step) * 1e-4)
                .find(|&t| inside(&(origin + direction * t)));
            let exact = cuboid.intersect(&origin, &direction, 0);
            match (marched, exact) {
                (Some(t), Some(hit)) => {
                    assert!((hit.distance - t).abs() < 2e-4, "{t} vs {hit:?}");
                    let point = origin + direction * hit.distance;
                    let outside = point + hit.normal * 1e-6;
                    assert!(!inside(&outside), "normal {:?} points inwards", hit.normal);
                    hits += 1;
                }
                (None, None) => {}
                (marched, exact) => panic!("marching {marched:?}, slab test {exact:?}"),
            }
        }
        assert!(hits > 100, "{hits} hits");
    }

    #[test]
    fn sampled_points_lie_on_a_surface() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let world = World::new(&mut rng, true, None);
        for _ in 0..500 {
            let point = world.sample_surface_point(&mut rng);
            let on_ground = point.z.abs() < 1e-12;
            let on_wall = (point.y - WALL_DISTANCE).abs() < 1e-12;
            let on_box = world.boxes.iter().any(|b| {
                let local = b.to_local * (point - b.center);
                (0..3).all(|axis| local[axis].abs() <= b.half[axis] + 1e-9)
                    && (0..3).any(|axis| (local[axis].abs() - b.half[axis]).abs() < 1e-9)
            });
            assert!(on_ground || on_wall || on_box, "{point:?}");
        }
    }
}
