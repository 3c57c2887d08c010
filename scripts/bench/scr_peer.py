"""Peer for `npm run bench -- scr`: the same SCR training step written with diffusers + peft on
torch CPU. One step: VAE encode (posterior mean), UNet with a rank-4 LoRA (OSEDiff's targets)
at t=999 with cross-attention probabilities captured by an attention processor, x0 from the
epsilon prediction, VAE decode, loss = MSE + SCL (per matched tag: (1 - mass inside the mask)^2
+ BCE(normalised map, mask)) on the captured maps, backward, AdamW. Inputs are random images
and masks of the same shapes as ours. argv: PRIOR_DIR BATCH SIZE THREADS.
Serves steps one per request (scripts/bench/lockstep.py), alternating with ours."""
import os
import sys

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor
from peft import LoraConfig, get_peft_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lockstep import serve  # noqa: E402

TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_in", "conv_shortcut", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2"]


class CaptureProcessor(AttnProcessor):
    """diffusers' plain attention, keeping the head-mean probabilities of cross-attention."""

    def __init__(self, store, name):
        super().__init__()
        self.store, self.name = store, name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        if encoder_hidden_states is None:
            return super().__call__(attn, hidden_states, None, attention_mask, temb)
        b = hidden_states.shape[0]
        q = attn.head_to_batch_dim(attn.to_q(hidden_states))
        k = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        v = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(q, k, None)
        self.store[self.name] = probs.reshape(b, -1, probs.shape[1], probs.shape[2]).mean(1)
        h = attn.batch_to_head_dim(torch.bmm(probs, v))
        return attn.to_out[1](attn.to_out[0](h))


def main():
    prior, batch, size, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    vae = AutoencoderKL.from_pretrained(prior, subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(prior, subfolder="unet")
    vae.requires_grad_(False)
    unet.requires_grad_(False)
    store = {}
    unet.set_attn_processor({n: CaptureProcessor(store, n) for n in unet.attn_processors})
    model = get_peft_model(unet, LoraConfig(r=4, lora_alpha=4, target_modules=TARGETS, init_lora_weights="gaussian"))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    abar = 0.00466009508818388  # alphas_cumprod[999] of SD's scaled_linear schedule
    sf = vae.config.scaling_factor
    lq = torch.rand(batch, 3, size, size) * 2 - 1
    hq = torch.rand(batch, 3, size, size) * 2 - 1
    ctx = torch.randn(batch, 77, unet.config.cross_attention_dim)
    masks = (torch.rand(batch, 3, size, size) > 0.5).float()  # 3 tags per image
    def step():
        z = vae.encode(lq).latent_dist.mean * sf
        eps = model(z, torch.tensor([999] * batch), encoder_hidden_states=ctx).sample
        x0 = (z - (1 - abar) ** 0.5 * eps) / abar ** 0.5
        img = vae.decode(x0 / sf).sample.clamp(-1, 1)
        loss = F.mse_loss(img, hq)
        terms = []
        for a in store.values():
            n = a.shape[1]
            h = int(round(n ** 0.5))
            m = F.adaptive_avg_pool2d(masks, (h, h)).flatten(2)  # [b, tags, n]
            for t in range(3):
                at = a[:, :, 1 + t]
                inside = (at * m[:, t]).sum(1) / at.sum(1)
                norm = at / at.amax(1, keepdim=True)
                terms.append(((1 - inside) ** 2).mean() + F.binary_cross_entropy(norm.clamp(1e-6, 1 - 1e-6), m[:, t]))
        loss = loss + torch.stack(terms).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.item()

    # one step per request, in turn with ours (scripts/bench/lockstep.py)
    serve(step, {"threads": torch.get_num_threads(), "torch": torch.__version__})


if __name__ == "__main__":
    main()
