//! The openpose preprocessor (body only, A1111's `openpose` module), as controlnet_aux's `OpenposeDetector` runs
//! the CMU body model (open_pose/body.py, util.py; the ControlNet extension's annotator/openpose is the same code):
//!
//! 1. the picture as BGR, scaled so its height is 184 (`0.5 * 368 / H`, OpenCV's area filter when shrinking,
//!    Lanczos-4 when enlarging), padded right and down to a multiple of 8 with 128, as `x / 256 - 0.5`;
//! 2. the network's 19 heatmaps and 38 part affinity fields (at 1/8) enlarged 8 times (Lanczos-4), the padding cut
//!    off, resized to the picture's size;
//! 3. per part, the peaks of the heatmap smoothed by a Gaussian (sigma 3, scipy's `gaussian_filter`) above 0.1;
//! 4. limbs scored along 10 points of each candidate pair's segment in the PAF, pairs chosen greedily, people
//!    assembled limb by limb and kept with 4 parts or more and a mean score of 0.4 or more;
//! 5. drawn on black: each limb an ellipse 4 pixels wide in 60% of its colour (OpenCV's `ellipse2Poly` +
//!    `fillConvexPoly`), each part a disc of radius 4.
//!
//! The extension first brings the picture to its detection resolution (512 on the short side); here the picture is
//! used at the size it is given (the generation size).

use image::{Rgb, RgbImage};
use ndarray::{Array2, Array3, Array4, ArrayView2, ArrayView3, s};

use super::{ControlImage, Preprocessing};
use super::{annotated, model_run_reporter};
use crate::error::Result;
use crate::image::{ResizeMode, resize_image};
use crate::model::PoseModel;
use crate::progress::{Flow, Progress};

/// body.py: `boxsize`, `scale_search = [0.5]`, `stride`, `padValue`, `thre1`, `thre2`, `mid_num`.
const BOX_SIZE: f64 = 368.0;
const SCALE_SEARCH: f64 = 0.5;
const STRIDE: usize = 8;
const PAD_VALUE: u8 = 128;
const PEAK_THRESHOLD: f64 = 0.1;
const PAF_THRESHOLD: f64 = 0.05;
const PAF_SAMPLES: usize = 10;
/// scipy's `gaussian_filter(sigma=3)`, truncated at 4 sigma.
const PEAK_SIGMA: f64 = 3.0;
const PEAK_RADIUS: usize = 12;
/// Body parts (heatmaps 0..18; the 19th is the background).
pub const BODY_PARTS: usize = 18;
/// body.py's `limbSeq` (1-based parts) and `mapIdx` minus 19 (the PAF channels, x then y, of each limb).
const LIMBS: [[usize; 2]; 19] = [
    [2, 3],
    [2, 6],
    [3, 4],
    [4, 5],
    [6, 7],
    [7, 8],
    [2, 9],
    [9, 10],
    [10, 11],
    [2, 12],
    [12, 13],
    [13, 14],
    [2, 1],
    [1, 15],
    [15, 17],
    [1, 16],
    [16, 18],
    [3, 17],
    [6, 18],
];
const LIMB_PAFS: [[usize; 2]; 19] = [
    [12, 13],
    [20, 21],
    [14, 15],
    [16, 17],
    [22, 23],
    [24, 25],
    [0, 1],
    [2, 3],
    [4, 5],
    [6, 7],
    [8, 9],
    [10, 11],
    [28, 29],
    [30, 31],
    [34, 35],
    [32, 33],
    [36, 37],
    [18, 19],
    [26, 27],
];
/// util.py `draw_bodypose`: the first 17 limbs are drawn, limb `k` and part `k` in `COLORS[k]`.
const DRAWN_LIMBS: usize = 17;
const COLORS: [[u8; 3]; 18] = [
    [255, 0, 0],
    [255, 85, 0],
    [255, 170, 0],
    [255, 255, 0],
    [170, 255, 0],
    [85, 255, 0],
    [0, 255, 0],
    [0, 255, 85],
    [0, 255, 170],
    [0, 255, 255],
    [0, 170, 255],
    [0, 85, 255],
    [0, 0, 255],
    [85, 0, 255],
    [170, 0, 255],
    [255, 0, 255],
    [255, 0, 170],
    [255, 0, 85],
];
const STICK_WIDTH: i64 = 4;
/// `cv2.circle(canvas, center, 4, color, thickness=-1)`: the half-width of each row of the disc, from dy = -4.
const DISC_HALF_WIDTHS: [i64; 9] = [0, 2, 3, 3, 4, 3, 3, 2, 0];

/// A peak of a part's heatmap: pixel position in the picture, heatmap value, and its number among all peaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    pub x: usize,
    pub y: usize,
    pub score: f64,
    pub id: usize,
}

/// One person: the peak id of each of the 18 parts (if found), the total score and the number of parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub parts: [Option<usize>; BODY_PARTS],
    pub score: f64,
    pub count: usize,
}

/// What the body model's outputs decode to (body.py's `candidate` and `subset`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BodyPoses {
    pub peaks: Vec<Peak>,
    pub people: Vec<Person>,
}

/// How the picture was brought to the network: its scaled size (before padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyInputLayout {
    pub scaled_width: usize,
    pub scaled_height: usize,
}

// ------------------------------------------------------------------------------------------------------------
// OpenCV's resampling, in floating point

/// `cv2.INTER_LANCZOS4` taps along one axis: 8 source indices (clamped: OpenCV's replicated border) and weights.
fn lanczos4_taps(input: usize, output: usize) -> Vec<([usize; 8], [f32; 8])> {
    const S45: f64 = std::f64::consts::FRAC_1_SQRT_2;
    const CS: [[f64; 2]; 8] =
        [[1.0, 0.0], [-S45, -S45], [0.0, 1.0], [S45, -S45], [-1.0, 0.0], [S45, S45], [0.0, -1.0], [-S45, S45]];
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|d| {
            let position = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let start = position.floor();
            let x = position - start;
            // interpolateLanczos4 (imgproc/src/resize.cpp).
            let y0 = -f64::from(x + 3.0) * std::f64::consts::PI * 0.25;
            let (s0, c0) = y0.sin_cos();
            let mut coeffs = [0f32; 8];
            let mut sum = 0f32;
            for (i, coeff) in coeffs.iter_mut().enumerate() {
                let yi = x + 3.0 - i as f32;
                *coeff = if yi.abs() >= 1e-6 {
                    let y = -f64::from(yi) * std::f64::consts::PI * 0.25;
                    ((CS[i][0] * s0 + CS[i][1] * c0) / (y * y)) as f32
                } else {
                    1e30
                };
                sum += *coeff;
            }
            let sum = 1.0 / sum;
            let indices = std::array::from_fn(|k| (start as i64 - 3 + k as i64).clamp(0, input as i64 - 1) as usize);
            (indices, coeffs.map(|c| c * sum))
        })
        .collect()
}

/// `cv2.INTER_AREA` shrinking along one axis (`computeResizeAreaTab`): for each output pixel, the source pixels
/// it covers and the share of each.
fn area_taps(input: usize, output: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = input as f64 / output as f64;
    (0..output)
        .map(|d| {
            let start = d as f64 * scale;
            let end = start + scale;
            let cell = scale.min(input as f64 - start);
            let last = (end.floor() as usize).min(input - 1);
            let first = (start.ceil() as usize).min(last);
            let mut taps = Vec::new();
            if first as f64 - start > 1e-3 {
                taps.push((first - 1, ((first as f64 - start) / cell) as f32));
            }
            taps.extend((first..last).map(|i| (i, (1.0 / cell) as f32)));
            if end - last as f64 > 1e-3 {
                taps.push((last, ((end - last as f64).min(1.0).min(cell) / cell) as f32));
            }
            taps
        })
        .collect()
}

/// One axis of a resize: weighted source pixels per output pixel.
type Taps = Vec<Vec<(usize, f32)>>;

/// util.py's `smart_resize`: Lanczos-4 to enlarge, area to shrink (judged on height + width together).
fn smart_taps(input: (usize, usize), output: (usize, usize)) -> (Taps, Taps) {
    let to_vec = |taps: Vec<([usize; 8], [f32; 8])>| -> Taps {
        taps.into_iter().map(|(i, w)| i.into_iter().zip(w).collect()).collect()
    };
    let enlarge = output.0 + output.1 >= input.0 + input.1;
    if enlarge {
        (to_vec(lanczos4_taps(input.0, output.0)), to_vec(lanczos4_taps(input.1, output.1)))
    } else {
        (area_taps(input.0, output.0), area_taps(input.1, output.1))
    }
}

/// A map resized separably (rows then columns, as OpenCV), in f32.
fn resize_map(map: ArrayView2<'_, f32>, rows: &Taps, columns: &Taps) -> Array2<f32> {
    let height = map.nrows();
    let mut horizontal = Array2::<f32>::zeros((height, columns.len()));
    for y in 0..height {
        for (x, taps) in columns.iter().enumerate() {
            horizontal[[y, x]] = taps.iter().map(|&(i, w)| map[[y, i]] * w).sum();
        }
    }
    let mut out = Array2::<f32>::zeros((rows.len(), columns.len()));
    for (y, taps) in rows.iter().enumerate() {
        for x in 0..columns.len() {
            out[[y, x]] = taps.iter().map(|&(i, w)| horizontal[[i, x]] * w).sum();
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------------------
// network input and decoding

/// OpenCV's Lanczos-4 on an 8-bit plane, in its fixed point: coefficients times 2048 rounded to integers, rows
/// then columns summed in integers, `(sum + 2^21) >> 22` saturated (`INTER_RESIZE_COEF_BITS` = 11, twice).
fn lanczos4_u8(plane: &Array2<u8>, height: usize, width: usize) -> Array2<f32> {
    let fixed = |taps: Vec<([usize; 8], [f32; 8])>| -> Vec<([usize; 8], [i64; 8])> {
        taps.into_iter().map(|(i, w)| (i, w.map(|c| (c * 2048.0).round_ties_even() as i64))).collect()
    };
    let rows = fixed(lanczos4_taps(plane.nrows(), height));
    let columns = fixed(lanczos4_taps(plane.ncols(), width));
    let mut horizontal = Array2::<i64>::zeros((plane.nrows(), width));
    for y in 0..plane.nrows() {
        for (x, (indices, weights)) in columns.iter().enumerate() {
            horizontal[[y, x]] = indices.iter().zip(weights).map(|(&i, &w)| i64::from(plane[[y, i]]) * w).sum();
        }
    }
    Array2::from_shape_fn((height, width), |(y, x)| {
        let (indices, weights) = &rows[y];
        let sum: i64 = indices.iter().zip(weights).map(|(&i, &w)| horizontal[[i, x]] * w).sum();
        ((sum + (1 << 21)) >> 22).clamp(0, 255) as f32
    })
}

/// The network input `[1, 3, h, w]` (BGR, `x / 256 - 0.5`, padded with 128 to a multiple of 8) and the layout.
pub fn body_input(image: &RgbImage) -> (Array4<f32>, BodyInputLayout) {
    let (width, height) = (image.width() as usize, image.height() as usize);
    // body.py: multiplier = scale_search * boxsize / H; smart_resize_k: int(W * scale), int(H * scale).
    let scale = SCALE_SEARCH * BOX_SIZE / height as f64;
    let (scaled_width, scaled_height) =
        (((width as f64 * scale) as usize).max(1), ((height as f64 * scale) as usize).max(1));
    let enlarge = scaled_width + scaled_height >= width + height;
    let (rows, columns) = smart_taps((height, width), (scaled_height, scaled_width));
    let channels: Vec<Array2<f32>> = (0..3)
        .map(|c| {
            let plane = Array2::from_shape_fn((height, width), |(y, x)| image.get_pixel(x as u32, y as u32).0[2 - c]);
            if enlarge {
                lanczos4_u8(&plane, scaled_height, scaled_width)
            } else {
                // OpenCV's area filter on 8 bits: in floating point, rounded to the nearest (halves to even).
                resize_map(plane.mapv(f32::from).view(), &rows, &columns)
                    .mapv(|v| v.round_ties_even().clamp(0.0, 255.0))
            }
        })
        .collect();
    let padded = (scaled_height.div_ceil(STRIDE) * STRIDE, scaled_width.div_ceil(STRIDE) * STRIDE);
    let input = Array4::from_shape_fn((1, 3, padded.0, padded.1), |(_, c, y, x)| {
        let value = if y < scaled_height && x < scaled_width { channels[c][[y, x]] } else { f32::from(PAD_VALUE) };
        value / 256.0 - 0.5
    });
    (input, BodyInputLayout { scaled_width, scaled_height })
}

/// The network's maps `[c, h/8, w/8]` at the picture's size `[c, height, width]`: enlarged 8 times, the padding cut
/// off, resized (body.py).
fn maps_at_picture_size(
    maps: ArrayView3<'_, f32>,
    layout: BodyInputLayout,
    width: usize,
    height: usize,
) -> Array3<f32> {
    let (_, h8, w8) = maps.dim();
    let up_rows: Taps =
        lanczos4_taps(h8, h8 * STRIDE).into_iter().map(|(i, w)| i.into_iter().zip(w).collect()).collect();
    let up_columns: Taps =
        lanczos4_taps(w8, w8 * STRIDE).into_iter().map(|(i, w)| i.into_iter().zip(w).collect()).collect();
    let cropped = (layout.scaled_height.min(h8 * STRIDE), layout.scaled_width.min(w8 * STRIDE));
    let (rows, columns) = smart_taps(cropped, (height, width));
    let mut out = Array3::<f32>::zeros((maps.dim().0, height, width));
    for (c, map) in maps.outer_iter().enumerate() {
        let enlarged = resize_map(map, &up_rows, &up_columns);
        let resized = resize_map(enlarged.slice(s![..cropped.0, ..cropped.1]), &rows, &columns);
        out.slice_mut(s![c, .., ..]).assign(&resized);
    }
    out
}

/// scipy's `gaussian_filter(map, sigma=3)`: along rows then columns, borders mirrored (`mode="reflect"`).
fn gaussian_filter(map: &Array2<f64>) -> Array2<f64> {
    let weights: Vec<f64> = (-(PEAK_RADIUS as i64)..=PEAK_RADIUS as i64)
        .map(|x| (-0.5 / (PEAK_SIGMA * PEAK_SIGMA) * (x * x) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let weights: Vec<f64> = weights.iter().map(|w| w / total).collect();
    let reflect = |i: i64, n: usize| -> usize {
        let n = n as i64;
        let period = 2 * n;
        let i = i.rem_euclid(period);
        (if i < n { i } else { period - 1 - i }) as usize
    };
    let (height, width) = map.dim();
    let mut along_y = Array2::<f64>::zeros((height, width));
    for y in 0..height {
        for x in 0..width {
            along_y[[y, x]] = weights
                .iter()
                .enumerate()
                .map(|(k, w)| w * map[[reflect(y as i64 + k as i64 - PEAK_RADIUS as i64, height), x]])
                .sum();
        }
    }
    let mut out = Array2::<f64>::zeros((height, width));
    for y in 0..height {
        for x in 0..width {
            out[[y, x]] = weights
                .iter()
                .enumerate()
                .map(|(k, w)| w * along_y[[y, reflect(x as i64 + k as i64 - PEAK_RADIUS as i64, width)]])
                .sum();
        }
    }
    out
}

/// The peaks of each part's heatmap, in row-major order, numbered across the parts.
fn find_peaks(heatmaps: &Array3<f32>) -> Vec<Vec<Peak>> {
    let mut next_id = 0;
    (0..BODY_PARTS)
        .map(|part| {
            let original = heatmaps.slice(s![part, .., ..]).mapv(f64::from);
            let smooth = gaussian_filter(&original);
            let (height, width) = smooth.dim();
            let mut peaks = Vec::new();
            for y in 0..height {
                for x in 0..width {
                    let v = smooth[[y, x]];
                    // Neighbours outside the map count as 0 (body.py's shifted zero arrays).
                    let at = |yy: Option<usize>, xx: Option<usize>| match (yy, xx) {
                        (Some(yy), Some(xx)) if yy < height && xx < width => smooth[[yy, xx]],
                        _ => 0.0,
                    };
                    let is_peak = v > PEAK_THRESHOLD
                        && v >= at(y.checked_sub(1), Some(x))
                        && v >= at(Some(y + 1), Some(x))
                        && v >= at(Some(y), x.checked_sub(1))
                        && v >= at(Some(y), Some(x + 1));
                    if is_peak {
                        peaks.push(Peak { x, y, score: original[[y, x]], id: next_id });
                        next_id += 1;
                    }
                }
            }
            peaks
        })
        .collect()
}

/// A chosen limb: the two peaks' ids, the limb's score, and their places in their parts' lists.
struct Connection {
    a: usize,
    b: usize,
    score: f64,
    i: usize,
    j: usize,
}

/// body.py's limb search: every pair of candidates scored along the PAF, then chosen greedily.
fn connect(limb: usize, peaks: &[Vec<Peak>], pafs: &Array3<f32>, height: usize) -> Option<Vec<Connection>> {
    let [a, b] = LIMBS[limb];
    let (candidates_a, candidates_b) = (&peaks[a - 1], &peaks[b - 1]);
    if candidates_a.is_empty() || candidates_b.is_empty() {
        return None;
    }
    let [paf_x, paf_y] = LIMB_PAFS[limb];
    let mut scored = Vec::new();
    for (i, pa) in candidates_a.iter().enumerate() {
        for (j, pb) in candidates_b.iter().enumerate() {
            let (vx, vy) = (pb.x as f64 - pa.x as f64, pb.y as f64 - pa.y as f64);
            let norm = (vx * vx + vy * vy).sqrt().max(0.001);
            let (vx, vy) = (vx / norm, vy / norm);
            // np.linspace(a, b, 10), each point rounded as Python's round (halves to even).
            let scores: Vec<f64> = (0..PAF_SAMPLES)
                .map(|k| {
                    let t = k as f64 / (PAF_SAMPLES - 1) as f64;
                    let lerp = |from: usize, to: usize| {
                        let (from, to) = (from as f64, to as f64);
                        if k == PAF_SAMPLES - 1 { to } else { from + t * (to - from) }
                    };
                    let (x, y) = (lerp(pa.x, pb.x).round_ties_even(), lerp(pa.y, pb.y).round_ties_even());
                    let (x, y) = (x as usize, y as usize);
                    f64::from(pafs[[paf_x, y, x]]) * vx + f64::from(pafs[[paf_y, y, x]]) * vy
                })
                .collect();
            let mean = scores.iter().sum::<f64>() / scores.len() as f64;
            let with_prior = mean + (0.5 * height as f64 / norm - 1.0).min(0.0);
            let above = scores.iter().filter(|&&v| v > PAF_THRESHOLD).count();
            if above as f64 > 0.8 * scores.len() as f64 && with_prior > 0.0 {
                scored.push((i, j, with_prior));
            }
        }
    }
    // Python's sorted(reverse=True) is stable: equal scores keep their order.
    scored.sort_by(|x, y| y.2.total_cmp(&x.2));
    let mut chosen: Vec<Connection> = Vec::new();
    let most = candidates_a.len().min(candidates_b.len());
    for (i, j, score) in scored {
        if chosen.iter().all(|c| c.i != i && c.j != j) {
            chosen.push(Connection { a: candidates_a[i].id, b: candidates_b[j].id, score, i, j });
            if chosen.len() >= most {
                break;
            }
        }
    }
    Some(chosen)
}

/// The people in the network's outputs `pafs` `[38, h/8, w/8]` and `heatmaps` `[19, h/8, w/8]` for a picture of
/// `width` x `height` brought to the network as `layout` says (body.py's `Body.__call__` after the model).
pub fn decode_body(
    pafs: ArrayView3<'_, f32>,
    heatmaps: ArrayView3<'_, f32>,
    layout: BodyInputLayout,
    width: usize,
    height: usize,
) -> BodyPoses {
    let heatmaps = maps_at_picture_size(heatmaps, layout, width, height);
    let pafs = maps_at_picture_size(pafs, layout, width, height);
    let peaks_by_part = find_peaks(&heatmaps);
    let peaks: Vec<Peak> = peaks_by_part.iter().flatten().copied().collect();
    let connections: Vec<Option<Vec<Connection>>> =
        (0..LIMBS.len()).map(|limb| connect(limb, &peaks_by_part, &pafs, height)).collect();

    // People as body.py's `subset` rows: 18 part slots (peak ids, -1 for none), then score and count.
    let mut people: Vec<([f64; BODY_PARTS], f64, f64)> = Vec::new();
    for (limb, found) in connections.iter().enumerate() {
        let Some(found) = found else { continue };
        let (part_a, part_b) = (LIMBS[limb][0] - 1, LIMBS[limb][1] - 1);
        for connection in found {
            let (a, b) = (connection.a as f64, connection.b as f64);
            let matching: Vec<usize> =
                (0..people.len()).filter(|&p| people[p].0[part_a] == a || people[p].0[part_b] == b).take(2).collect();
            match matching.as_slice() {
                [p] => {
                    let person = &mut people[*p];
                    if person.0[part_b] != b {
                        person.0[part_b] = b;
                        person.2 += 1.0;
                        person.1 += peaks[connection.b].score + connection.score;
                    }
                }
                [p1, p2] => {
                    let (p1, p2) = (*p1, *p2);
                    let overlap = (0..BODY_PARTS).any(|k| people[p1].0[k] >= 0.0 && people[p2].0[k] >= 0.0);
                    if overlap {
                        let person = &mut people[p1];
                        person.0[part_b] = b;
                        person.2 += 1.0;
                        person.1 += peaks[connection.b].score + connection.score;
                    } else {
                        let other = people[p2];
                        let person = &mut people[p1];
                        for k in 0..BODY_PARTS {
                            person.0[k] += other.0[k] + 1.0;
                        }
                        person.1 += other.1 + connection.score;
                        person.2 += other.2;
                        people.remove(p2);
                    }
                }
                _ if limb < DRAWN_LIMBS => {
                    let mut parts = [-1.0; BODY_PARTS];
                    parts[part_a] = a;
                    parts[part_b] = b;
                    let score = peaks[connection.a].score + peaks[connection.b].score + connection.score;
                    people.push((parts, score, 2.0));
                }
                _ => {}
            }
        }
    }
    let people = people
        .into_iter()
        .filter(|(_, score, count)| *count >= 4.0 && score / count >= 0.4)
        .map(|(parts, score, count)| Person {
            parts: parts.map(|p| (p >= 0.0).then_some(p as usize)),
            score,
            count: count as usize,
        })
        .collect();
    BodyPoses { peaks, people }
}

// ------------------------------------------------------------------------------------------------------------
// drawing, as OpenCV draws

fn put(canvas: &mut RgbImage, x: i64, y: i64, color: [u8; 3]) {
    if x >= 0 && y >= 0 && x < i64::from(canvas.width()) && y < i64::from(canvas.height()) {
        canvas.put_pixel(x as u32, y as u32, Rgb(color));
    }
}

/// OpenCV's 8-connected `Line` (a `LineIterator`, drawn left to right).
fn draw_line(canvas: &mut RgbImage, from: (i64, i64), to: (i64, i64), color: [u8; 3]) {
    let (mut p, q) = if to.0 < from.0 { (to, from) } else { (from, to) };
    let (dx, dy) = (q.0 - p.0, (q.1 - p.1).abs());
    let step_y = if q.1 < p.1 { -1 } else { 1 };
    let steep = dy > dx;
    let (major, minor) = if steep { (dy, dx) } else { (dx, dy) };
    let mut error = major - 2 * minor;
    for _ in 0..=major {
        put(canvas, p.0, p.1, color);
        let diagonal = error < 0;
        error += -2 * minor + if diagonal { 2 * major } else { 0 };
        // The minor step is taken when the error goes negative; the major step always.
        if steep {
            p.1 += step_y;
            if diagonal {
                p.0 += 1;
            }
        } else {
            p.0 += 1;
            if diagonal {
                p.1 += step_y;
            }
        }
    }
}

/// OpenCV's `FillConvexPoly` with 8-connected outline and no sub-pixel shift (imgproc/src/drawing.cpp).
fn fill_convex_poly(canvas: &mut RgbImage, points: &[(i64, i64)], color: [u8; 3]) {
    const XY_SHIFT: i64 = 16;
    const XY_ONE: i64 = 1 << XY_SHIFT;
    let n = points.len();
    let Some(&last) = points.last() else { return };
    let mut previous = last;
    for &point in points {
        draw_line(canvas, previous, point, color);
        previous = point;
    }
    // `points` is not empty: the defaults are never used.
    let (xmin, xmax) = (points.iter().map(|p| p.0).min().unwrap_or(0), points.iter().map(|p| p.0).max().unwrap_or(0));
    let ymax_raw = points.iter().map(|p| p.1).max().unwrap_or(0);
    let (imin, ymin) =
        points.iter().enumerate().fold((0, points[0].1), |(im, ym), (i, p)| if p.1 < ym { (i, p.1) } else { (im, ym) });
    let (width, height) = (i64::from(canvas.width()), i64::from(canvas.height()));
    if n < 3 || xmax < 0 || ymax_raw < 0 || xmin >= width || ymin >= height {
        return;
    }
    let ymax = ymax_raw.min(height - 1);
    #[derive(Clone, Copy)]
    struct Edge {
        idx: usize,
        di: usize,
        x: i64,
        dx: i64,
        ye: i64,
    }
    let mut edges = [
        Edge { idx: imin, di: 1, x: -XY_ONE, dx: 0, ye: ymin },
        Edge { idx: imin, di: n - 1, x: -XY_ONE, dx: 0, ye: ymin },
    ];
    let mut remaining = n as i64;
    let delta = XY_ONE >> 1;
    let mut y = ymin;
    loop {
        for edge in &mut edges {
            if y >= edge.ye {
                let mut idx0 = edge.idx;
                let mut idx = (idx0 + edge.di) % n;
                loop {
                    remaining -= 1;
                    if remaining < 0 {
                        break;
                    }
                    let ty = points[idx].1;
                    if ty > y {
                        let (xs, xe) = (points[idx0].0 << XY_SHIFT, points[idx].0 << XY_SHIFT);
                        edge.ye = ty;
                        edge.dx = ((xe - xs) * 2 + (ty - y)) / (2 * (ty - y));
                        edge.x = xs;
                        edge.idx = idx;
                        break;
                    }
                    idx0 = idx;
                    idx = (idx + edge.di) % n;
                }
            }
        }
        if remaining < 0 {
            break;
        }
        if y >= 0 {
            let (left, right) = if edges[0].x > edges[1].x { (1, 0) } else { (0, 1) };
            let x1 = (edges[left].x + delta) >> XY_SHIFT;
            let x2 = (edges[right].x + delta) >> XY_SHIFT;
            if x2 >= 0 && x1 < width {
                for x in x1.max(0)..=x2.min(width - 1) {
                    put(canvas, x, y, color);
                }
            }
        }
        edges[0].x += edges[0].dx;
        edges[1].x += edges[1].dx;
        y += 1;
        if y > ymax {
            break;
        }
    }
}

/// OpenCV's sine table (`SinTable` in drawing.cpp: sines of whole degrees to 7 decimals, as floats).
fn table_sin(degrees: i64) -> f32 {
    (((degrees as f64).to_radians().sin() * 1e7).round() / 1e7) as f32
}

/// OpenCV's `ellipse2Poly(center, axes, angle, 0, 360, 1)` with whole-pixel points.
fn ellipse_polygon(center: (i64, i64), axes: (i64, i64), angle: i64) -> Vec<(i64, i64)> {
    let angle = angle.rem_euclid(360);
    let (alpha, beta) = (f64::from(table_sin(450 - angle)), f64::from(table_sin(angle)));
    let mut points: Vec<(i64, i64)> = Vec::new();
    for i in 0..=360 {
        let x = axes.0 as f64 * f64::from(table_sin(450 - i));
        let y = axes.1 as f64 * f64::from(table_sin(i));
        let point = (
            (center.0 as f64 + x * alpha - y * beta).round_ties_even() as i64,
            (center.1 as f64 + x * beta + y * alpha).round_ties_even() as i64,
        );
        if points.last() != Some(&point) {
            points.push(point);
        }
    }
    if points.len() == 1 {
        points = vec![center, center];
    }
    points
}

/// The poses drawn on black, as util.py's `draw_bodypose` (keypoints go through `x / W * W` as there).
pub fn draw_body(poses: &BodyPoses, width: u32, height: u32) -> RgbImage {
    let mut canvas = RgbImage::new(width, height);
    let (w, h) = (f64::from(width), f64::from(height));
    for person in &poses.people {
        // detect_poses normalises by the picture's size; draw_bodypose multiplies back.
        let keypoints: Vec<Option<(f64, f64)>> = person
            .parts
            .iter()
            .map(|part| part.map(|id| (poses.peaks[id].x as f64 / w, poses.peaks[id].y as f64 / h)))
            .collect();
        for (limb, color) in LIMBS.iter().take(DRAWN_LIMBS).zip(COLORS) {
            let (Some(k1), Some(k2)) = (keypoints[limb[0] - 1], keypoints[limb[1] - 1]) else { continue };
            let (y0, y1) = (k1.0 * w, k2.0 * w);
            let (x0, x1) = (k1.1 * h, k2.1 * h);
            let (mean_x, mean_y) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
            let length = ((x0 - x1).powi(2) + (y0 - y1).powi(2)).sqrt();
            let angle = (x0 - x1).atan2(y0 - y1).to_degrees();
            let polygon =
                ellipse_polygon((mean_y as i64, mean_x as i64), ((length / 2.0) as i64, STICK_WIDTH), angle as i64);
            fill_convex_poly(&mut canvas, &polygon, color.map(|c| (f64::from(c) * 0.6) as u8));
        }
        for (keypoint, color) in keypoints.iter().zip(COLORS) {
            let Some((x, y)) = keypoint else { continue };
            let (cx, cy) = ((x * w) as i64, (y * h) as i64);
            for (dy, half) in (-4..=4).zip(DISC_HALF_WIDTHS) {
                for dx in -half..=half {
                    put(&mut canvas, cx + dx, cy + dy, color);
                }
            }
        }
    }
    canvas
}

/// The poses in `image` at its size. `progress` sees the model run (stage [`Stage::Preprocessing`], step 0 then
/// 1 of 1) and may cancel before it.
pub fn detect_body(
    model: &mut PoseModel,
    image: &RgbImage,
    progress: &mut dyn FnMut(&Progress) -> Flow,
) -> Result<BodyPoses> {
    let mut report = model_run_reporter(progress);
    report(0)?;
    let (input, layout) = body_input(image);
    let (pafs, heatmaps) = model.predict(&input)?;
    let poses = decode_body(pafs.view(), heatmaps.view(), layout, image.width() as usize, image.height() as usize);
    report(1)?;
    Ok(poses)
}

/// The openpose control image for `image` at `width` x `height` (the picture resized to the generation size
/// first), and how it was made for the PNG metadata.
pub fn openpose_control(
    model: &mut PoseModel,
    image: &RgbImage,
    width: u32,
    height: u32,
    progress: &mut dyn FnMut(&Progress) -> Flow,
) -> Result<(ControlImage, Preprocessing)> {
    let image = resize_image(image, width, height, ResizeMode::Just);
    let poses = detect_body(model, &image, progress)?;
    Ok((ControlImage::new(draw_body(&poses, width, height)), annotated("openpose", model.name())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanczos_and_area_taps_sum_to_one() {
        for (input, output) in [(5, 40), (23, 184), (184, 64), (100, 37)] {
            let taps = if output > input {
                lanczos4_taps(input, output).into_iter().map(|(i, w)| i.into_iter().zip(w).collect()).collect()
            } else {
                area_taps(input, output)
            };
            for t in taps {
                let sum: f32 = t.iter().map(|(_, w)| w).sum();
                assert!((sum - 1.0).abs() < 1e-5, "{input}->{output}: {sum}");
            }
        }
    }

    #[test]
    fn a_filled_ellipse_is_symmetric_and_four_pixels_wide() {
        let mut canvas = RgbImage::new(40, 40);
        fill_convex_poly(&mut canvas, &ellipse_polygon((20, 20), (10, 4), 0), [255, 0, 0]);
        let lit = |x: u32, y: u32| canvas.get_pixel(x, y).0[0] == 255;
        assert!(lit(20, 20) && lit(10, 20) && lit(30, 20) && lit(20, 16) && lit(20, 24));
        assert!(!lit(20, 15) && !lit(20, 25) && !lit(9, 20) && !lit(31, 20));
    }
}
