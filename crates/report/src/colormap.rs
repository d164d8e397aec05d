//! Colormaps: the perceptually uniform *viridis* map for scalar values and the
//! categorical *tab10* palette for integer labels.
//!
//! Both follow matplotlib's definitions, so a picture made here looks like the
//! one `matplotlib.pyplot.imshow(..., cmap="viridis")` (or `cmap="tab10"`)
//! would make of the same data.
//!
//! ```
//! use phyvae_report::colormap::{label_colour, viridis};
//! assert_eq!(viridis(0.0), [68, 1, 84]); // #440154
//! assert_eq!(viridis(1.0), [253, 231, 37]); // #fde725
//! assert_eq!(label_colour(0), [31, 119, 180]); // tab10 "C0", #1f77b4
//! ```

/// Number of entries of [`VIRIDIS`].
pub const VIRIDIS_LEN: usize = 256;

/// The viridis colormap (van der Walt & Smith, 2015; CC0), 256 sRGB entries,
/// entry 0 for the lowest value and entry 255 for the highest.
///
/// Source: `_viridis_data` in matplotlib's `lib/matplotlib/_cm_listed.py`
/// (the 256 published floating-point RGB triplets in `[0, 1]`), each channel
/// converted to 8 bits as `round(255 * c)` (half away from zero; no channel of
/// the table lies on a half), which is what `matplotlib.colors.to_hex` gives:
/// e.g. entry 0 = `#440154`, entry 128 = `#21918c`, entry 255 = `#fde725`.
/// (matplotlib's `Colormap.__call__(..., bytes=True)` truncates instead of
/// rounding, so its byte output can be one lower in a channel.)
pub const VIRIDIS: [[u8; 3]; VIRIDIS_LEN] = [
    [68, 1, 84],
    [68, 2, 86],
    [69, 4, 87],
    [69, 5, 89],
    [70, 7, 90],
    [70, 8, 92],
    [70, 10, 93],
    [70, 11, 94],
    [71, 13, 96],
    [71, 14, 97],
    [71, 16, 99],
    [71, 17, 100],
    [71, 19, 101],
    [72, 20, 103],
    [72, 22, 104],
    [72, 23, 105],
    [72, 24, 106],
    [72, 26, 108],
    [72, 27, 109],
    [72, 28, 110],
    [72, 29, 111],
    [72, 31, 112],
    [72, 32, 113],
    [72, 33, 115],
    [72, 35, 116],
    [72, 36, 117],
    [72, 37, 118],
    [72, 38, 119],
    [72, 40, 120],
    [72, 41, 121],
    [71, 42, 122],
    [71, 44, 122],
    [71, 45, 123],
    [71, 46, 124],
    [71, 47, 125],
    [70, 48, 126],
    [70, 50, 126],
    [70, 51, 127],
    [70, 52, 128],
    [69, 53, 129],
    [69, 55, 129],
    [69, 56, 130],
    [68, 57, 131],
    [68, 58, 131],
    [68, 59, 132],
    [67, 61, 132],
    [67, 62, 133],
    [66, 63, 133],
    [66, 64, 134],
    [66, 65, 134],
    [65, 66, 135],
    [65, 68, 135],
    [64, 69, 136],
    [64, 70, 136],
    [63, 71, 136],
    [63, 72, 137],
    [62, 73, 137],
    [62, 74, 137],
    [62, 76, 138],
    [61, 77, 138],
    [61, 78, 138],
    [60, 79, 138],
    [60, 80, 139],
    [59, 81, 139],
    [59, 82, 139],
    [58, 83, 139],
    [58, 84, 140],
    [57, 85, 140],
    [57, 86, 140],
    [56, 88, 140],
    [56, 89, 140],
    [55, 90, 140],
    [55, 91, 141],
    [54, 92, 141],
    [54, 93, 141],
    [53, 94, 141],
    [53, 95, 141],
    [52, 96, 141],
    [52, 97, 141],
    [51, 98, 141],
    [51, 99, 141],
    [50, 100, 142],
    [50, 101, 142],
    [49, 102, 142],
    [49, 103, 142],
    [49, 104, 142],
    [48, 105, 142],
    [48, 106, 142],
    [47, 107, 142],
    [47, 108, 142],
    [46, 109, 142],
    [46, 110, 142],
    [46, 111, 142],
    [45, 112, 142],
    [45, 113, 142],
    [44, 113, 142],
    [44, 114, 142],
    [44, 115, 142],
    [43, 116, 142],
    [43, 117, 142],
    [42, 118, 142],
    [42, 119, 142],
    [42, 120, 142],
    [41, 121, 142],
    [41, 122, 142],
    [41, 123, 142],
    [40, 124, 142],
    [40, 125, 142],
    [39, 126, 142],
    [39, 127, 142],
    [39, 128, 142],
    [38, 129, 142],
    [38, 130, 142],
    [38, 130, 142],
    [37, 131, 142],
    [37, 132, 142],
    [37, 133, 142],
    [36, 134, 142],
    [36, 135, 142],
    [35, 136, 142],
    [35, 137, 142],
    [35, 138, 141],
    [34, 139, 141],
    [34, 140, 141],
    [34, 141, 141],
    [33, 142, 141],
    [33, 143, 141],
    [33, 144, 141],
    [33, 145, 140],
    [32, 146, 140],
    [32, 146, 140],
    [32, 147, 140],
    [31, 148, 140],
    [31, 149, 139],
    [31, 150, 139],
    [31, 151, 139],
    [31, 152, 139],
    [31, 153, 138],
    [31, 154, 138],
    [30, 155, 138],
    [30, 156, 137],
    [30, 157, 137],
    [31, 158, 137],
    [31, 159, 136],
    [31, 160, 136],
    [31, 161, 136],
    [31, 161, 135],
    [31, 162, 135],
    [32, 163, 134],
    [32, 164, 134],
    [33, 165, 133],
    [33, 166, 133],
    [34, 167, 133],
    [34, 168, 132],
    [35, 169, 131],
    [36, 170, 131],
    [37, 171, 130],
    [37, 172, 130],
    [38, 173, 129],
    [39, 173, 129],
    [40, 174, 128],
    [41, 175, 127],
    [42, 176, 127],
    [44, 177, 126],
    [45, 178, 125],
    [46, 179, 124],
    [47, 180, 124],
    [49, 181, 123],
    [50, 182, 122],
    [52, 182, 121],
    [53, 183, 121],
    [55, 184, 120],
    [56, 185, 119],
    [58, 186, 118],
    [59, 187, 117],
    [61, 188, 116],
    [63, 188, 115],
    [64, 189, 114],
    [66, 190, 113],
    [68, 191, 112],
    [70, 192, 111],
    [72, 193, 110],
    [74, 193, 109],
    [76, 194, 108],
    [78, 195, 107],
    [80, 196, 106],
    [82, 197, 105],
    [84, 197, 104],
    [86, 198, 103],
    [88, 199, 101],
    [90, 200, 100],
    [92, 200, 99],
    [94, 201, 98],
    [96, 202, 96],
    [99, 203, 95],
    [101, 203, 94],
    [103, 204, 92],
    [105, 205, 91],
    [108, 205, 90],
    [110, 206, 88],
    [112, 207, 87],
    [115, 208, 86],
    [117, 208, 84],
    [119, 209, 83],
    [122, 209, 81],
    [124, 210, 80],
    [127, 211, 78],
    [129, 211, 77],
    [132, 212, 75],
    [134, 213, 73],
    [137, 213, 72],
    [139, 214, 70],
    [142, 214, 69],
    [144, 215, 67],
    [147, 215, 65],
    [149, 216, 64],
    [152, 216, 62],
    [155, 217, 60],
    [157, 217, 59],
    [160, 218, 57],
    [162, 218, 55],
    [165, 219, 54],
    [168, 219, 52],
    [170, 220, 50],
    [173, 220, 48],
    [176, 221, 47],
    [178, 221, 45],
    [181, 222, 43],
    [184, 222, 41],
    [186, 222, 40],
    [189, 223, 38],
    [192, 223, 37],
    [194, 223, 35],
    [197, 224, 33],
    [200, 224, 32],
    [202, 225, 31],
    [205, 225, 29],
    [208, 225, 28],
    [210, 226, 27],
    [213, 226, 26],
    [216, 226, 25],
    [218, 227, 25],
    [221, 227, 24],
    [223, 227, 24],
    [226, 228, 24],
    [229, 228, 25],
    [231, 228, 25],
    [234, 229, 26],
    [236, 229, 27],
    [239, 229, 28],
    [241, 229, 29],
    [244, 230, 30],
    [246, 230, 32],
    [248, 230, 33],
    [251, 231, 35],
    [253, 231, 37],
];

/// Colour of a value that is not a number (NaN) in a scalar map: mid grey.
pub const NAN_GREY: [u8; 3] = [128, 128, 128];

/// The viridis colour of a value `t` scaled to `[0, 1]`.
///
/// Convention as matplotlib's `ListedColormap.__call__` for floats: entry
/// `floor(256 * t)`, with `t = 1` giving the last entry (255). Values below 0
/// are clamped to entry 0 and values above 1 to entry 255 (matplotlib's default
/// under/over colours are these ends too). NaN gives entry 0; draw NaN with
/// [`NAN_GREY`] before calling this if it must stand out (as
/// [`crate::render::encode_map_png`] does).
#[must_use]
pub fn viridis(t: f32) -> [u8; 3] {
    VIRIDIS[viridis_index(t)]
}

/// The entry of [`VIRIDIS`] used for `t` (see [`viridis`]): `floor(256 t)`
/// clamped to `0..=255`, NaN -> 0.
#[must_use]
pub fn viridis_index(t: f32) -> usize {
    let scaled = f64::from(t) * VIRIDIS_LEN as f64;
    if scaled.is_nan() || scaled <= 0.0 {
        0
    } else if scaled >= (VIRIDIS_LEN - 1) as f64 {
        VIRIDIS_LEN - 1
    } else {
        // 0 < scaled < 255: the truncating cast is the floor and is in range.
        scaled as usize
    }
}

/// matplotlib's `tab10` categorical palette (the default colour cycle
/// `C0`..`C9`, from Tableau 10): blue `#1f77b4`, orange `#ff7f0e`, green
/// `#2ca02c`, red `#d62728`, purple `#9467bd`, brown `#8c564b`, pink `#e377c2`,
/// grey `#7f7f7f`, olive `#bcbd22`, cyan `#17becf`. Source: `_tab10_data` in
/// matplotlib's `lib/matplotlib/_cm.py` (the same values as fractions of 255).
pub const TAB10: [[u8; 3]; 10] = [
    [0x1f, 0x77, 0xb4],
    [0xff, 0x7f, 0x0e],
    [0x2c, 0xa0, 0x2c],
    [0xd6, 0x27, 0x28],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x7f, 0x7f, 0x7f],
    [0xbc, 0xbd, 0x22],
    [0x17, 0xbe, 0xcf],
];

/// Colour of a negative label (by convention "no label" / "ignored"): black.
pub const UNLABELLED: [u8; 3] = [0, 0, 0];

/// The colour of an integer label: [`TAB10`]`[label mod 10]` for `label >= 0`
/// (cycling like matplotlib's `C{n}` colour cycle, so labels 0..=9 are all
/// distinct), [`UNLABELLED`] for negative labels.
#[must_use]
pub fn label_colour(label: i32) -> [u8; 3] {
    match usize::try_from(label) {
        Ok(l) => TAB10[l % TAB10.len()],
        Err(_) => UNLABELLED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a `#rrggbb` string (the form the colours are published in).
    fn hex(s: &str) -> [u8; 3] {
        let v = u32::from_str_radix(s.trim_start_matches('#'), 16).unwrap();
        [(v >> 16) as u8, (v >> 8) as u8, v as u8]
    }

    #[test]
    fn viridis_known_entries() {
        // Published matplotlib hex values: mpl.colors.to_hex(viridis(x)) for
        // x = 0, 0.25, 0.5, 0.75, 1 is #440154, #3b528b, #21918c, #5ec962, #fde725.
        assert_eq!(VIRIDIS[0], hex("#440154"));
        assert_eq!(VIRIDIS[64], hex("#3b528b"));
        assert_eq!(VIRIDIS[128], hex("#21918c"));
        assert_eq!(VIRIDIS[192], hex("#5ec962"));
        assert_eq!(VIRIDIS[255], hex("#fde725"));
        assert_eq!(viridis(0.5), [33, 145, 140]);
    }

    #[test]
    fn viridis_is_clamped_and_floors() {
        assert_eq!(viridis(-3.0), VIRIDIS[0]);
        assert_eq!(viridis(7.0), VIRIDIS[255]);
        assert_eq!(viridis(f32::NEG_INFINITY), VIRIDIS[0]);
        assert_eq!(viridis(f32::INFINITY), VIRIDIS[255]);
        assert_eq!(viridis(f32::NAN), VIRIDIS[0]);
        // floor(256 * 0.25) = 64; floor(256 * 0.2499) = floor(63.97) = 63.
        assert_eq!(viridis_index(0.25), 64);
        assert_eq!(viridis_index(0.2499), 63);
        // floor(256 * 0.999) = floor(255.74) = 255.
        assert_eq!(viridis_index(0.999), 255);
    }

    #[test]
    fn viridis_lightness_increases() {
        // Viridis is monotonically increasing in lightness; the green channel
        // (the main contributor to luminance) rises from 1 to 231.
        for i in 1..VIRIDIS_LEN {
            assert!(VIRIDIS[i][1] >= VIRIDIS[i - 1][1], "entry {i}");
        }
    }

    #[test]
    fn label_colours() {
        assert_eq!(label_colour(0), hex("#1f77b4"));
        assert_eq!(label_colour(1), hex("#ff7f0e"));
        assert_eq!(label_colour(2), hex("#2ca02c"));
        assert_eq!(label_colour(9), hex("#17becf"));
        assert_eq!(label_colour(10), label_colour(0));
        assert_eq!(label_colour(-1), [0, 0, 0]);
        for a in 0..10 {
            for b in 0..a {
                assert_ne!(label_colour(a), label_colour(b));
            }
        }
    }
}
