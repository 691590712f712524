//! The six tray icons, drawn in code at the size the panel asks for (crisp at 16–32 px, no
//! scaling blur): a coloured disc with a white rim so it reads on light and dark panels, and a
//! white glyph so the states differ by shape too, not only by colour (colour-blind users).

use crate::TrayState;

/// RGBA pixels, `size`×`size`, for the state.
pub fn rgba(state: TrayState, size: u32) -> Vec<u8> {
    let n = size as f32;
    let c = n / 2.0;
    let r = n / 2.0 - 0.5;
    let fill = match state {
        TrayState::Healthy => [0x16, 0xa3, 0x4a],
        TrayState::Degraded | TrayState::Backup => [0xf5, 0x9e, 0x0b],
        TrayState::Outage => [0xdc, 0x26, 0x26],
        TrayState::Nothing => [0x8a, 0x91, 0x9c],
        TrayState::LocalOnly => [0x25, 0x63, 0xeb],
    };
    let stroke = (n / 10.0).max(1.5);
    let mut out = Vec::with_capacity((size * size * 4) as usize);
    for y in 0..size {
        for x in 0..size {
            // Pixel centre, in units of the icon (0..1 from the middle).
            let (px, py) = (x as f32 + 0.5 - c, y as f32 + 0.5 - c);
            let d = (px * px + py * py).sqrt();
            let coverage = (r - d + 0.5).clamp(0.0, 1.0);
            let rim = d > r - stroke * 0.6;
            let (u, v) = (px / r, py / r);
            let glyph = coverage > 0.0 && !rim && in_glyph(state, u, v, stroke / r);
            let rgb = if rim || glyph { [0xff, 0xff, 0xff] } else { fill };
            out.extend_from_slice(&[rgb[0], rgb[1], rgb[2], (coverage * 255.0) as u8]);
        }
    }
    out
}

/// Whether (u, v) in -1..1 lies on the state's glyph; `w` is the stroke width in those units.
fn in_glyph(state: TrayState, u: f32, v: f32, w: f32) -> bool {
    let line = |ax: f32, ay: f32, bx: f32, by: f32| {
        // Distance from (u, v) to the segment a-b.
        let (dx, dy) = (bx - ax, by - ay);
        let t = (((u - ax) * dx + (v - ay) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
        let (qx, qy) = (ax + t * dx - u, ay + t * dy - v);
        (qx * qx + qy * qy).sqrt() < w * 0.75
    };
    match state {
        // A tick.
        TrayState::Healthy => line(-0.42, 0.0, -0.12, 0.32) || line(-0.12, 0.32, 0.45, -0.3),
        // An exclamation mark.
        TrayState::Degraded => line(0.0, -0.5, 0.0, 0.12) || (u * u + (v - 0.42).powi(2)).sqrt() < w * 0.8,
        // A bent arrow: answers go round the primary.
        TrayState::Backup => line(-0.4, 0.3, -0.4, -0.2) || line(-0.4, -0.2, 0.35, -0.2) || line(0.35, -0.2, 0.1, -0.45) || line(0.35, -0.2, 0.1, 0.05),
        // A cross.
        TrayState::Outage => line(-0.38, -0.38, 0.38, 0.38) || line(-0.38, 0.38, 0.38, -0.38),
        // A dash.
        TrayState::Nothing => line(-0.45, 0.0, 0.45, 0.0),
        // A small house-like "L" for local: a vertical and a foot.
        TrayState::LocalOnly => line(-0.2, -0.45, -0.2, 0.35) || line(-0.2, 0.35, 0.35, 0.35),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(img: &[u8], size: u32, x: u32, y: u32) -> [u8; 4] {
        let i = ((y * size + x) * 4) as usize;
        [img[i], img[i + 1], img[i + 2], img[i + 3]]
    }

    #[test]
    fn each_state_has_its_colour_a_transparent_outside_and_a_distinct_shape() {
        let states = [TrayState::Healthy, TrayState::Degraded, TrayState::Backup, TrayState::Outage, TrayState::Nothing, TrayState::LocalOnly];
        for size in [16, 22, 32] {
            let imgs: Vec<Vec<u8>> = states.iter().map(|s| rgba(*s, size)).collect();
            for img in &imgs {
                assert_eq!(img.len(), (size * size * 4) as usize);
                assert_eq!(px(img, size, 0, 0)[3], 0, "corners are transparent");
            }
            // Same shape masks never coincide: states differ without colour too.
            let masks: Vec<Vec<bool>> =
                imgs.iter().map(|i| i.chunks(4).map(|p| p[3] > 128 && p[0] == 0xff && p[1] == 0xff && p[2] == 0xff).collect()).collect();
            for a in 0..masks.len() {
                for b in a + 1..masks.len() {
                    assert_ne!(masks[a], masks[b], "{:?} and {:?} at {size}px", states[a], states[b]);
                }
            }
        }
        // A fill pixel (left of centre, off the glyphs) has the state's colour.
        let red = rgba(TrayState::Outage, 32);
        assert_eq!(&px(&red, 32, 6, 16)[..3], &[0xdc, 0x26, 0x26]);
        let green = rgba(TrayState::Healthy, 32);
        assert_eq!(&px(&green, 32, 16, 6)[..3], &[0x16, 0xa3, 0x4a]);
    }
}
