//! Writes the six tray icons on a light and a dark panel as a PPM image (README's picture):
//! `cargo run -p understudy-alerts --example tray_states -- out.ppm`, then convert to PNG.

use understudy_alerts::{icon, TrayState};

fn main() -> std::io::Result<()> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "tray-states.ppm".into());
    let states = [TrayState::Healthy, TrayState::Degraded, TrayState::Backup, TrayState::Outage, TrayState::Nothing, TrayState::LocalOnly];
    let (size, pad) = (32u32, 12u32);
    let (w, h) = (states.len() as u32 * (size + pad) + pad, 2 * (size + pad) + pad);
    let mut img = vec![0u8; (w * h * 3) as usize];
    for y in 0..h {
        let bg: u8 = if y < h / 2 { 0xf2 } else { 0x22 };
        for x in 0..w {
            let i = ((y * w + x) * 3) as usize;
            img[i..i + 3].copy_from_slice(&[bg, bg, bg]);
        }
    }
    for top in [pad, size + 2 * pad] {
        for (k, s) in states.iter().enumerate() {
            let px = icon::rgba(*s, size);
            let left = pad + k as u32 * (size + pad);
            for y in 0..size {
                for x in 0..size {
                    let p = &px[((y * size + x) * 4) as usize..][..4];
                    let i = (((top + y) * w + left + x) * 3) as usize;
                    for c in 0..3 {
                        let a = f32::from(p[3]) / 255.0;
                        img[i + c] = (f32::from(p[c]) * a + f32::from(img[i + c]) * (1.0 - a)) as u8;
                    }
                }
            }
        }
    }
    let mut file = format!("P6\n{w} {h}\n255\n").into_bytes();
    file.extend_from_slice(&img);
    std::fs::write(out, file)
}
