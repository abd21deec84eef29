//! Audio in and out for calls without a sound card: tone generators, WAV files (48 kHz mono
//! 16-bit PCM), and tone detection (Goertzel).

use std::io::{Read, Write};
use std::path::Path;

/// The sample rate of every call (Opus's native rate).
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples in one 20 ms frame at [`SAMPLE_RATE`], mono.
pub const FRAME_SAMPLES: usize = 960;

/// Why a WAV file could not be read or written, or an audio spec not parsed.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// File system.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a 48 kHz mono 16-bit PCM WAV file.
    #[error("not a 48 kHz mono 16-bit PCM WAV file: {0}")]
    Format(&'static str),
    /// `--audio-in` is none of `tone:<Hz>`, `silence`, or a `.wav` path.
    #[error("audio source {0:?}: expected tone:<Hz>, silence, or a .wav file")]
    Spec(String),
}

/// Where a call's outgoing audio comes from.
#[derive(Debug, Clone)]
pub enum AudioSource {
    /// A sine tone.
    Tone {
        /// Frequency, Hz.
        freq: f64,
        /// Samples produced so far.
        n: u64,
    },
    /// A WAV file's samples, looped.
    Samples {
        /// The samples.
        samples: Vec<i16>,
        /// Where the next frame starts.
        at: usize,
    },
    /// Silence.
    Silence,
}

impl AudioSource {
    /// A tone of `freq` Hz.
    pub fn tone(freq: f64) -> Self {
        Self::Tone { freq, n: 0 }
    }

    /// Parses `tone:440`, `silence`, or a WAV path.
    pub fn parse(spec: &str) -> Result<Self, AudioError> {
        if let Some(f) = spec.strip_prefix("tone:") {
            let freq: f64 = f.parse().map_err(|_| AudioError::Spec(spec.to_owned()))?;
            if !(20.0..=20_000.0).contains(&freq) {
                return Err(AudioError::Spec(spec.to_owned()));
            }
            return Ok(Self::tone(freq));
        }
        if spec == "silence" {
            return Ok(Self::Silence);
        }
        if spec.ends_with(".wav") {
            let samples = read_wav(Path::new(spec))?;
            if samples.is_empty() {
                return Err(AudioError::Format("no samples"));
            }
            return Ok(Self::Samples { samples, at: 0 });
        }
        Err(AudioError::Spec(spec.to_owned()))
    }

    /// The next 20 ms frame.
    pub fn next_frame(&mut self) -> Vec<i16> {
        match self {
            Self::Tone { freq, n } => {
                let mut out = Vec::with_capacity(FRAME_SAMPLES);
                for _ in 0..FRAME_SAMPLES {
                    let t = *n as f64 / f64::from(SAMPLE_RATE);
                    let v = (2.0 * std::f64::consts::PI * *freq * t).sin() * 8_000.0;
                    out.push(v as i16);
                    *n = n.wrapping_add(1);
                }
                out
            }
            Self::Samples { samples, at } => {
                let mut out = Vec::with_capacity(FRAME_SAMPLES);
                while out.len() < FRAME_SAMPLES {
                    let s = samples.get(*at).copied().unwrap_or(0);
                    out.push(s);
                    *at = if at.saturating_add(1) >= samples.len() { 0 } else { at.saturating_add(1) };
                }
                out
            }
            Self::Silence => vec![0; FRAME_SAMPLES],
        }
    }
}

/// The power of `freq` in `samples` (Goertzel), normalised by the number of samples.
pub fn goertzel(samples: &[i16], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(SAMPLE_RATE);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len().max(1) as f64;
    power / (n * n)
}

/// How much of the signal's energy is a tone of `freq`: 0 (none) to about 1 (a pure tone).
pub fn tone_share(samples: &[i16], freq: f64) -> f64 {
    let energy: f64 = samples.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / samples.len().max(1) as f64;
    if energy < 1.0 {
        return 0.0;
    }
    // A pure sine of amplitude A has energy A²/2 and Goertzel power A²/4.
    (2.0 * goertzel(samples, freq) / energy).min(1.5)
}

/// Writes 48 kHz mono 16-bit PCM.
pub fn write_wav(path: &Path, samples: &[i16]) -> Result<(), AudioError> {
    let data_len = u32::try_from(samples.len().saturating_mul(2)).map_err(|_| AudioError::Format("too long"))?;
    let mut out = Vec::with_capacity(44usize.saturating_add(samples.len().saturating_mul(2)));
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&SAMPLE_RATE.to_le_bytes());
    out.extend_from_slice(&SAMPLE_RATE.saturating_mul(2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::File::create(path)?.write_all(&out)?;
    Ok(())
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at.checked_add(1)?)?]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(at)?,
        *b.get(at.checked_add(1)?)?,
        *b.get(at.checked_add(2)?)?,
        *b.get(at.checked_add(3)?)?,
    ]))
}

/// Reads a 48 kHz mono 16-bit PCM WAV file (chunks other than `fmt ` and `data` are skipped).
pub fn read_wav(path: &Path) -> Result<Vec<i16>, AudioError> {
    let mut b = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut b)?;
    if b.get(0..4) != Some(b"RIFF") || b.get(8..12) != Some(b"WAVE") {
        return Err(AudioError::Format("no RIFF/WAVE header"));
    }
    let mut at = 12usize;
    let mut format_ok = false;
    while let (Some(id), Some(len)) = (b.get(at..at.saturating_add(4)), u32_at(&b, at.saturating_add(4))) {
        let body = at.saturating_add(8);
        let len = usize::try_from(len).map_err(|_| AudioError::Format("chunk length"))?;
        let end = body.checked_add(len).filter(|e| *e <= b.len()).ok_or(AudioError::Format("truncated chunk"))?;
        match id {
            b"fmt " => {
                let ok = u16_at(&b, body) == Some(1)
                    && u16_at(&b, body.saturating_add(2)) == Some(1)
                    && u32_at(&b, body.saturating_add(4)) == Some(SAMPLE_RATE)
                    && u16_at(&b, body.saturating_add(14)) == Some(16);
                if !ok {
                    return Err(AudioError::Format("not PCM 48 kHz mono 16-bit"));
                }
                format_ok = true;
            }
            b"data" => {
                if !format_ok {
                    return Err(AudioError::Format("data before fmt"));
                }
                let data = b.get(body..end).ok_or(AudioError::Format("truncated data"))?;
                return Ok(data
                    .chunks_exact(2)
                    .map(|c| i16::from_le_bytes(<[u8; 2]>::try_from(c).unwrap_or([0, 0])))
                    .collect());
            }
            _ => {}
        }
        at = end.saturating_add(len % 2);
    }
    Err(AudioError::Format("no data chunk"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tones_are_found_at_their_frequency_only() {
        let mut a = AudioSource::tone(440.0);
        let samples: Vec<i16> = (0..50).flat_map(|_| a.next_frame()).collect();
        assert!(tone_share(&samples, 440.0) > 0.9, "{}", tone_share(&samples, 440.0));
        assert!(tone_share(&samples, 880.0) < 0.01);
        assert_eq!(tone_share(&[0; 960], 440.0), 0.0);
    }

    #[test]
    fn wav_round_trips_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wav");
        let mut a = AudioSource::tone(1000.0);
        let samples = a.next_frame();
        write_wav(&p, &samples).unwrap();
        assert_eq!(read_wav(&p).unwrap(), samples);
        let mut src = AudioSource::parse(p.to_str().unwrap()).unwrap();
        assert_eq!(src.next_frame(), samples);
        std::fs::write(&p, b"RIFF\x00\x00\x00\x00WAVEdata\xff\xff\xff\xff").unwrap();
        assert!(read_wav(&p).is_err());
        std::fs::write(&p, b"junk").unwrap();
        assert!(read_wav(&p).is_err());
        assert!(AudioSource::parse("tone:abc").is_err());
        assert!(AudioSource::parse("tone:5").is_err());
        assert!(AudioSource::parse("mic").is_err());
    }
}
