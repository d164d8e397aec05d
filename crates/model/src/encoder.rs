//! The encoder `q(z | x)` of every model (pyroVED `fcEncoderNet`):
//! flatten -> Linear(N, H) -> tanh -> Linear(H, H) -> tanh -> two heads
//! Linear(H, L): the mean, and the standard deviation through softplus
//! (docs/METHOD.md section 2; `L` = special + content latents).

use candle_core::Tensor;
use candle_nn::{Linear, Module};
use rand::Rng;

use crate::Result;
use crate::error::FrameworkContext;
use crate::params::ParamStore;

/// Smallest encoder standard deviation: keeps `log sigma` of the KL term finite
/// when softplus underflows.
pub const MIN_STD: f64 = 1e-6;

/// The encoder's four linear layers, registered in a [`ParamStore`] as
/// `encoder.fc1`, `encoder.fc2`, `encoder.mean`, `encoder.std` (`.weight`
/// `(out, in)` and `.bias`, PyTorch layout).
#[derive(Debug, Clone)]
pub struct Encoder {
    fc1: Linear,
    fc2: Linear,
    mean: Linear,
    std: Linear,
}

/// Names and shapes `(out, in)` of the encoder layers.
fn layers(n_pixels: usize, hidden: usize, n_total: usize) -> [(&'static str, usize, usize); 4] {
    [
        ("encoder.fc1", hidden, n_pixels),
        ("encoder.fc2", hidden, hidden),
        ("encoder.mean", n_total, hidden),
        ("encoder.std", n_total, hidden),
    ]
}

/// Registers a PyTorch-initialised `nn.Linear(fan_in, out)`: weight and bias
/// uniform in `+-1/sqrt(fan_in)`.
pub(crate) fn init_linear<R: Rng + ?Sized>(
    store: &mut ParamStore,
    name: &str,
    out: usize,
    fan_in: usize,
    bias: bool,
    rng: &mut R,
) -> Result<Linear> {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let w = store.uniform(&format!("{name}.weight"), &[out, fan_in], bound, rng)?;
    let b = if bias {
        Some(store.uniform(&format!("{name}.bias"), &[out], bound, rng)?)
    } else {
        None
    };
    Ok(Linear::new(w, b))
}

/// Looks up a linear layer registered by [`init_linear`].
pub(crate) fn get_linear(
    store: &ParamStore,
    name: &str,
    out: usize,
    fan_in: usize,
    bias: bool,
) -> Result<Linear> {
    let w = store.get(&format!("{name}.weight"), &[out, fan_in])?;
    let b = if bias {
        Some(store.get(&format!("{name}.bias"), &[out])?)
    } else {
        None
    };
    Ok(Linear::new(w, b))
}

impl Encoder {
    /// Registers a freshly initialised encoder for `n_pixels` inputs, width
    /// `hidden` and `n_total` latents.
    ///
    /// # Errors
    /// [`crate::ModelError`] when a parameter cannot be registered.
    pub fn init<R: Rng + ?Sized>(
        store: &mut ParamStore,
        n_pixels: usize,
        hidden: usize,
        n_total: usize,
        rng: &mut R,
    ) -> Result<Self> {
        let [a, b, c, d] = layers(n_pixels, hidden, n_total);
        Ok(Self {
            fc1: init_linear(store, a.0, a.1, a.2, true, rng)?,
            fc2: init_linear(store, b.0, b.1, b.2, true, rng)?,
            mean: init_linear(store, c.0, c.1, c.2, true, rng)?,
            std: init_linear(store, d.0, d.1, d.2, true, rng)?,
        })
    }

    /// The encoder stored in `store` (for a loaded model).
    ///
    /// # Errors
    /// [`crate::ModelError`] when a layer is missing or has the wrong shape.
    pub fn from_store(
        store: &ParamStore,
        n_pixels: usize,
        hidden: usize,
        n_total: usize,
    ) -> Result<Self> {
        let [a, b, c, d] = layers(n_pixels, hidden, n_total);
        Ok(Self {
            fc1: get_linear(store, a.0, a.1, a.2, true)?,
            fc2: get_linear(store, b.0, b.1, b.2, true)?,
            mean: get_linear(store, c.0, c.1, c.2, true)?,
            std: get_linear(store, d.0, d.1, d.2, true)?,
        })
    }

    /// Mean and standard deviation of `q(z | x)` for flattened patches `x`
    /// `(B, N)`: both `(B, L)`; the standard deviation is
    /// `softplus(.) + MIN_STD`.
    ///
    /// # Errors
    /// [`crate::ModelError::Framework`] when a tensor operation fails (e.g. a
    /// wrong input width).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self
            .fc1
            .forward(x)
            .ctx("encoder layer 1")?
            .tanh()
            .ctx("encoder tanh")?; // (B, H)
        let h = self
            .fc2
            .forward(&h)
            .ctx("encoder layer 2")?
            .tanh()
            .ctx("encoder tanh")?; // (B, H)
        let mu = self.mean.forward(&h).ctx("encoder mean head")?; // (B, L)
        let raw = self.std.forward(&h).ctx("encoder std head")?; // (B, L)
        let sd = (softplus(&raw)? + MIN_STD).ctx("encoder std")?; // (B, L)
        Ok((mu, sd))
    }
}

/// `softplus(x) = log(1 + exp(x))`, computed as `max(x, 0) + log(1 + exp(-|x|))`
/// so that it neither overflows nor loses the linear tail.
///
/// # Errors
/// [`crate::ModelError::Framework`] when a tensor operation fails.
pub fn softplus(x: &Tensor) -> Result<Tensor> {
    let tail = (x
        .abs()
        .ctx("softplus")?
        .neg()
        .ctx("softplus")?
        .exp()
        .ctx("softplus")?
        + 1.0)
        .ctx("softplus")?
        .log()
        .ctx("softplus")?;
    (x.relu().ctx("softplus")? + tail).ctx("softplus")
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::SeedableRng;

    #[test]
    fn softplus_matches_definition_and_is_stable() {
        let x = Tensor::new(&[-100.0f32, -1.0, 0.0, 2.0, 100.0], &Device::Cpu).unwrap();
        let y: Vec<f32> = softplus(&x).unwrap().to_vec1().unwrap();
        // log(1 + e^x): e^-100 ~ 3.7e-44, ln(1 + e^-1) = 0.3132617, ln 2, 2 + ln(1 + e^-2) = 2.1269280
        let want = [
            0.0f32,
            0.313_261_7,
            std::f32::consts::LN_2,
            2.126_928,
            100.0,
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn shapes_and_positive_std() {
        let dev = Device::Cpu;
        let mut store = ParamStore::new(&dev);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let enc = Encoder::init(&mut store, 16, 8, 4, &mut rng).unwrap();
        assert_eq!(store.num_params(), 16 * 8 + 8 + 8 * 8 + 8 + 2 * (4 * 8 + 4));
        let x = Tensor::ones((3, 16), candle_core::DType::F32, &dev).unwrap();
        let (mu, sd) = enc.forward(&x).unwrap();
        assert_eq!(mu.dims(), [3, 4]);
        assert_eq!(sd.dims(), [3, 4]);
        let sd: Vec<Vec<f32>> = sd.to_vec2().unwrap();
        assert!(sd.iter().flatten().all(|&s| s > 0.0));
        let again = Encoder::from_store(&store, 16, 8, 4).unwrap();
        let (mu2, _) = again.forward(&x).unwrap();
        let d: f32 = (mu - mu2)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(d, 0.0);
        assert!(Encoder::from_store(&store, 15, 8, 4).is_err());
    }
}
