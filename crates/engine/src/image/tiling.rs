//! Running a network over a large picture in overlapping tiles and blending the overlaps, with memory bounded by
//! one row of tiles: the VAE (tiled encode and decode) and the upscalers share it.
//!
//! Tiles are laid out in the network's input coordinates; the output is `scale` times larger (8 for the VAE
//! decoder, the model's factor for an upscaler; the VAE encoder runs on the grid of its *output*, see
//! [`TileGrid::new`]). Where two tiles overlap, each pixel is the weighted mean of both, with weights ramping
//! linearly across the overlap (as diffusers' `blend_h`/`blend_v` and A1111's ESRGAN `combine_grid`), so no seam
//! shows. Rows of the output are handed to a sink as soon as no later tile can touch them.

use ndarray::ArrayView3;

use crate::error::Result;

/// Tile positions along one axis: tiles of `tile` covering `size`, neighbours sharing at least `overlap`, spread
/// evenly so that every tile has the full size (the last one ends at `size`).
pub(crate) fn tile_starts(size: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if size <= tile {
        return vec![0];
    }
    let stride = tile.saturating_sub(overlap).max(1);
    let count = (size - tile).div_ceil(stride) + 1;
    (0..count).map(|i| ((size - tile) * i + (count - 1) / 2) / (count - 1)).collect()
}

/// OpenCV's BORDER_REFLECT_101 (gfedcb|abcdefgh|gfedcba) for an index that may be off either end: mask blur's
/// border, and the context mirrored around an upscaler's border tiles.
pub(crate) fn reflect_101(index: i64, length: usize) -> usize {
    let length = length as i64;
    if length == 1 {
        return 0;
    }
    let period = 2 * (length - 1);
    let i = index.rem_euclid(period);
    (if i >= length { period - i } else { i }) as usize
}

/// One axis of a tile grid: where the tiles start (input units) and how long they are.
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    pub starts: Vec<usize>,
    pub tile: usize,
}

impl Axis {
    pub(crate) fn new(size: usize, tile: usize, overlap: usize) -> Axis {
        Axis { starts: tile_starts(size, tile, overlap), tile: tile.min(size) }
    }

    /// The blending weight of tile `index` at each of its `tile * scale` output positions: 1 inside, a linear ramp
    /// across each overlap with a neighbour, complementary to the neighbour's so that the two sum to 1.
    pub(crate) fn weights(&self, index: usize, scale: usize) -> Vec<f32> {
        let length = self.tile * scale;
        let start = self.starts[index] * scale;
        let mut weights = vec![1.0f32; length];
        if index > 0 {
            let overlap = (self.starts[index - 1] * scale + length).saturating_sub(start);
            for (p, w) in weights.iter_mut().enumerate().take(overlap) {
                *w = w.min((p as f32 + 0.5) / overlap as f32);
            }
        }
        if index + 1 < self.starts.len() {
            let overlap = (start + length).saturating_sub(self.starts[index + 1] * scale);
            for (p, w) in weights.iter_mut().enumerate().skip(length - overlap) {
                *w = w.min(((length - p) as f32 - 0.5) / overlap as f32);
            }
        }
        weights
    }
}

/// Accumulates weighted tiles for a band of output rows and hands finished rows to a sink.
pub(crate) struct BandBlender {
    width: usize,
    channels: usize,
    /// Output row of the buffers' first row.
    top: usize,
    values: Vec<f32>,
    weights: Vec<f32>,
}

impl BandBlender {
    pub(crate) fn new(width: usize, channels: usize) -> BandBlender {
        BandBlender { width, channels, top: 0, values: Vec::new(), weights: Vec::new() }
    }

    /// Adds `tile` (`[channels, height, width]`) with its top-left corner at output (`left`, `top`), weighted by
    /// `row_weights[y] * column_weights[x]`.
    pub(crate) fn add(
        &mut self,
        tile: ArrayView3<'_, f32>,
        left: usize,
        top: usize,
        row_weights: &[f32],
        column_weights: &[f32],
    ) {
        let (channels, height, width) = tile.dim();
        debug_assert_eq!(channels, self.channels);
        assert!(top >= self.top, "a tile above rows already handed out");
        let bottom = top + height;
        let rows_needed = bottom - self.top;
        let rows_held = self.weights.len() / self.width;
        if rows_needed > rows_held {
            self.values.resize(rows_needed * self.width * self.channels, 0.0);
            self.weights.resize(rows_needed * self.width, 0.0);
        }
        for y in 0..height {
            let row = top + y - self.top;
            for x in 0..width {
                let w = row_weights[y] * column_weights[x];
                let at = row * self.width + left + x;
                self.weights[at] += w;
                for c in 0..channels {
                    self.values[at * self.channels + c] += w * tile[[c, y, x]];
                }
            }
        }
    }

    /// Hands every row above output row `until` to `sink` as (row, values interleaved by channel), normalised by
    /// the weights, and forgets them.
    pub(crate) fn flush(&mut self, until: usize, sink: &mut dyn FnMut(usize, &[f32]) -> Result<()>) -> Result<()> {
        let rows_held = self.weights.len() / self.width;
        let rows = until.saturating_sub(self.top).min(rows_held);
        let mut line = vec![0.0f32; self.width * self.channels];
        for r in 0..rows {
            for x in 0..self.width {
                let w = self.weights[r * self.width + x];
                let scale = if w > 0.0 { 1.0 / w } else { 0.0 };
                for c in 0..self.channels {
                    line[x * self.channels + c] = self.values[(r * self.width + x) * self.channels + c] * scale;
                }
            }
            sink(self.top + r, &line)?;
        }
        self.values.drain(..rows * self.width * self.channels);
        self.weights.drain(..rows * self.width);
        self.top += rows;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn reflect_101_mirrors_without_repeating_the_edge() {
        let got: Vec<usize> = (-3..7).map(|i| reflect_101(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(reflect_101(-5, 1), 0);
    }

    #[test]
    fn tiles_cover_the_axis_with_at_least_the_overlap() {
        assert_eq!(tile_starts(64, 64, 16), vec![0]);
        assert_eq!(tile_starts(40, 64, 16), vec![0]);
        assert_eq!(tile_starts(100, 64, 16), vec![0, 36]);
        let starts = tile_starts(1000, 192, 16);
        assert_eq!(starts[0], 0);
        assert_eq!(*starts.last().unwrap(), 1000 - 192);
        for pair in starts.windows(2) {
            assert!(pair[1] > pair[0] && pair[0] + 192 >= pair[1] + 16, "{starts:?}");
        }
    }

    #[test]
    fn weights_of_neighbours_sum_to_one_across_the_axis() {
        // (Where three tiles meet, which needs overlaps above half a tile, the blender's normalisation takes over.)
        for (size, tile, overlap, scale) in [(100, 64, 16, 1), (1000, 192, 16, 4), (70, 16, 4, 8), (33, 16, 4, 2)] {
            let axis = Axis::new(size, tile, overlap);
            let mut sums = vec![0.0f32; size * scale];
            for (i, &start) in axis.starts.iter().enumerate() {
                for (p, w) in axis.weights(i, scale).iter().enumerate() {
                    sums[start * scale + p] += w;
                }
            }
            assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{size} {tile} {overlap} {scale}: {sums:?}");
        }
    }

    #[test]
    fn a_constant_blends_to_the_same_constant_and_rows_come_out_in_order() {
        let axis = Axis::new(50, 16, 6);
        let mut blender = BandBlender::new(50, 2);
        let mut rows = Vec::new();
        for (row_index, &top) in axis.starts.iter().enumerate() {
            for (column_index, &left) in axis.starts.iter().enumerate() {
                let tile = Array3::from_elem((2, 16, 16), 0.25f32);
                blender.add(tile.view(), left, top, &axis.weights(row_index, 1), &axis.weights(column_index, 1));
            }
            let until = axis.starts.get(row_index + 1).copied().unwrap_or(50);
            blender
                .flush(until, &mut |y, line| {
                    assert!(line.iter().all(|v| (v - 0.25).abs() < 1e-6));
                    rows.push(y);
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(rows, (0..50).collect::<Vec<_>>());
    }
}
