"""MoCoGAN (Tulyakov et al. 2018): video from a content code fixed per clip and recurrent motion codes per frame.

G (gankit.nets.video.VideoGenerator) draws each frame with one shared image generator from [z_c, z_m(t)], z_m(t)
the state of a GRU fed fresh noise each frame. Two discriminators judge it: D_I sees single frames picked at random
from real and generated clips (are the frames realistic?), D_V sees whole clips through 3D convolutions (is the
motion realistic?). Both sit in group D and are stepped together on the sum of their losses; G minimises the sum of
its losses against both. `loss.name` picks the game for both. `mocogan.frame_nets=biggan` makes the frame generator
and D_I BigGAN's residual, spectral-norm nets; `mocogan.layered` has the frame generator draw a mask per frame over
colours held per clip; `mocogan.sprite` has it draw one object per clip and move it, frame by frame, by a shift
read from the motion code.

`mocogan.content_categories` K > 0 adds a categorical content code c (one-hot, fixed per clip like z_c) and a Q head
on D_I that must read c back from every frame it judges (InfoGAN's mutual-information bound, which MoCoGAN uses for
its categorical action code; here for content): a frame whose object drifts to another kind stops saying which c it
came from, so G is pushed to keep it. Alone, Q and G settle on any code G can hide in a frame; as InfoGAN's
clustering and self-augmentation terms do for images, `mocogan.real_weight` makes Q cluster real frames and
`mocogan.clip_weight` makes it read all frames of a real clip alike, so the code G must show is what real clips hold.
Labels are never used by these.

`mocogan.labels` makes the model class-conditional instead (MoCoGAN conditions its motion on action categories;
here the content is the data's class): the code is each clip's label and fakes take the real batch's labels. D_I
sees the label of each frame's clip either through ACGAN's auxiliary classifier (`classifier`: Q, trained on real
and generated frames, that G must satisfy in every frame) or a projection (`projection`, Miyato & Koyama 2018: D_I
judges whether a frame is a real one of its class); `mocogan.video_labels` gives D_V the label by a projection too.

`mocogan.independent_frames` gives D_I its fakes as MoCoGAN's code does: an image batch of its own, one frame at a
random time from each of as many freshly drawn clips as D_I judges real frames (only those frames are drawn), so
G's image term sees as many contents as frames, not 4 frames of each of 16 contents.

`mocogan.video_start` S is a warm start: D_V's terms join the game at step S, so until then G learns its frames
from D_I alone, as an image GAN would, and motion is learnt on frames that already show their class.

`mocogan.framewise=true` is the baseline of the same size and budget: every frame from an independent latent and no
D_V, i.e. an image GAN (DCGAN) run T times; its clips have no reason to keep their content, which ACD measures.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from .. import losses
from ..config import Config, Section
from ..data import Batch
from ..errors import UserError
from ..metrics.diversity import diversity_ratio
from ..nets import BigGANDiscriminator, HeadedD, ProjectionD, feature_shape
from ..nets.dcgan import DCGANDiscriminator
from ..nets.video import VideoDiscriminator, VideoGenerator
from .base import Context, Group, Phase, Request, Variant, adversarial_groups, categorical_index
from .registry import register_variant

FAKE = "fake"  # Context key: the D phase's clips (graph through G kept) for this iteration's G phase


class MoCoGANConfig(Section):
    """mocogan's own keys."""

    content_dim: int = Field(32, ge=1, description="size of the content code z_c, fixed for a whole clip")
    motion_dim: int = Field(16, ge=1, description="size of the motion code z_m(t) (the GRU's state)")
    noise_dim: int = Field(8, ge=1, description="size of the noise ε(t) fed to the GRU each frame")
    g_width: int = Field(32, ge=4, description="the image generator's channels at full resolution (DCGAN width)")
    g_start: Literal[4, 8, 16] = Field(4, description="side of the image generator's first map (DCGAN: 4); 8 places "
                                       "moving objects on a finer grid, with one upsampling stage fewer")
    d_width: int = Field(32, ge=4, description="first-layer channels of D_I and D_V")
    video_weight: float = Field(1.0, ge=0, description="weight of D_V's terms in D's and G's losses (0: no D_V)")
    video_start: int = Field(0, ge=0, description="step from which D_V's terms join D's and G's losses; before it G "
                             "learns its frames from D_I alone, as an image GAN (a warm start; 0: from the first step)")
    video_labels: bool = Field(False, description="D_V also judges each clip with its label, by a projection (Miyato "
                               "& Koyama 2018), so the class is checked over the whole clip, not only in D_I's "
                               "frames; needs mocogan.labels")
    image_frames: int = Field(1, ge=1, le=64, description="frames D_I judges per clip, picked at random (MoCoGAN: 1)")
    independent_frames: bool = Field(False, description="D_I's fakes are one random frame each of clips drawn "
                                     "apart from the ones D_V judges (MoCoGAN's own image batch: as many as D_I's "
                                     "real frames, each from its own content), not frames of D_V's clips")
    pair_weight: float = Field(0.0, ge=0, description="weight of a pair D that judges two random frames of a clip "
                               "side by side, so content that drifts is easy to catch (gankit's addition; 0: none)")
    minibatch_std: bool = Field(False, description="D_I and D_V see the minibatch std of their last features "
                                "(Karras et al. 2018), so a G that draws too few kinds of clip is easier to catch")
    content_categories: int = Field(0, ge=0, description="values of a categorical content code, fixed per clip, "
                                    "that a Q head on D_I reads back from every frame (InfoGAN-style; 0: none)")
    info_weight: float = Field(1.0, ge=0, description="weight λ of the categorical content code's mutual-information "
                               "term, for Q in D's step and for G in its own")
    real_weight: float = Field(0.0, ge=0, description="weight of a clustering term on real frames: Q's code "
                               "confident per frame and balanced over the batch (IMSAT; no labels used)")
    real_balance: float = Field(1.0, ge=0, description="weight, inside the clustering term, of using every value "
                                "of the code equally against deciding each frame confidently (IMSAT's μ)")
    clip_weight: float = Field(0.0, ge=0, description="weight of a consistency term on real clips: Q's reading of "
                               "each judged frame against its clip's mean reading (needs image_frames >= 2)")
    labels: Literal["none", "classifier", "projection"] = Field(
        "none", description="class-conditional: the content code is the clip's label, and D_I sees it through ACGAN's "
        "classifier of real and generated frames or a projection; needs labelled clips")
    q_fakes: bool = Field(True, description="Q also learns to read the code from the fakes (InfoGAN); false: Q "
                          "learns from real frames only (real_weight, clip_weight), and G must draw frames that Q puts "
                          "in the clip's code")
    framewise: bool = Field(False, description="baseline: independent latent per frame, no motion GRU, no D_V")
    frame_nets: Literal["dcgan", "biggan"] = Field(
        "dcgan", description="the image G and D_I: DCGAN's, or BigGAN's residual nets with spectral norm (G's "
        "conditional batch norms read each frame's latent; g_start 4; no attention)")
    layered: bool = Field(False, description="G's image net draws a mask per frame, and the object's and the "
                          "background's colours come from the content code, one each per clip (LR-GAN's layers)")
    coords: bool = Field(False, description="the DCGAN frame generator's upsampling convs see each pixel's x and y "
                         "as two more channels (CoordConv; measured on moving shapes, it did not help: docs/video.md)")
    sprite: bool = Field(False, description="G draws one object per clip (colour and opacity, from the content "
                         "code) and moves it in each frame by a shift read from the motion code, over a background "
                         "colour per clip: a transformation-based G for objects that move without changing")


@register_variant("mocogan")
class MoCoGAN(Variant):
    """Content + motion G, image D on random frames and video D on clips; phases D (both Ds) then G."""

    Config = MoCoGANConfig
    own_nets = "content + GRU motion G over a shared DCGAN or BigGAN image G; DCGAN or BigGAN image D, 3D-conv video " \
        "D, optional pair D (mocogan.*)"

    def __init__(self, cfg: Config, spec: dict) -> None:
        super().__init__(cfg, spec)
        o = self.options
        if spec["kind"] != "clip":
            raise UserError(f"variant mocogan generates clips, and data {spec['name']} is {spec['kind']}",
                            "use data.name=moving-shapes or moving-digits (docs/video.md)")
        frames, channels, height, width = spec["shape"]
        if height != width:
            raise UserError(f"mocogan needs square frames, the data is {height}×{width}", "set data.resolution")
        self.categories, self.labelled, self.projection = o.content_categories, o.labels != "none", \
            o.labels == "projection"
        if self.labelled:
            if not spec.get("class_names"):
                raise UserError(f"mocogan.labels={o.labels} needs labelled clips, and data {spec['name']} has none",
                                "use data.name=moving-shapes or moving-digits, or mocogan.labels=none")
            if self.categories or o.real_weight or o.clip_weight:
                raise UserError(f"mocogan.labels={o.labels} takes its code from the labels; content_categories, "
                                "real_weight and clip_weight are for the code learnt without them", "drop those keys")
            self.class_names = list(spec["class_names"])
            self.categories = len(self.class_names)
        if self.categories == 1:
            raise UserError("mocogan.content_categories=1 is a code with one value, which says nothing",
                            "set mocogan.content_categories to 0 (none) or 2 or more")
        if (o.real_weight or o.clip_weight) and not self.categories:
            raise UserError("mocogan.real_weight and mocogan.clip_weight train the reader of a content code, and this "
                            "model has none", "set mocogan.content_categories >= 2")
        if o.clip_weight and o.image_frames < 2:
            raise UserError("mocogan.clip_weight compares frames of one real clip, and D_I judges one frame per clip",
                            "set mocogan.image_frames >= 2")
        if self.categories and not o.q_fakes and not (o.real_weight or o.clip_weight or self.labelled):
            raise UserError("mocogan.q_fakes=false leaves Q nothing to learn from", "set mocogan.real_weight or "
                            "mocogan.clip_weight above 0, or mocogan.q_fakes=true")
        if o.video_labels and not (self.labelled and o.video_weight and not o.framewise):
            raise UserError("mocogan.video_labels gives D_V the clips' labels, and this model has "
                            + ("no D_V" if self.labelled else "no labels"),
                            "set mocogan.labels=projection (or classifier) and mocogan.video_weight above 0, or drop "
                            "mocogan.video_labels")
        if self.categories:
            self.sampling = frozenset({"truncation", "labels" if self.labelled else "codes"})
        residual = o.frame_nets == "biggan"
        clash = [key for key, on in (("mocogan.framewise=true", o.framewise), ("mocogan.layered=true", o.layered),
                                     ("mocogan.frame_nets=biggan", residual), ("mocogan.coords=true", o.coords)) if on]
        if o.sprite and clash:
            raise UserError(f"mocogan.sprite=true (the moving-shapes-video preset's G) draws one object per clip with "
                            f"DCGAN's net and moves it, so it cannot take {' or '.join(clash)}",
                            f"add mocogan.sprite=false to use {' and '.join(clash)}, or drop "
                            + ("them" if len(clash) > 1 else "it"))
        if residual and (o.g_start != 4 or o.minibatch_std or o.coords):
            raise UserError("mocogan.frame_nets=biggan starts G from BigGAN's 4×4 map, without coordinate channels, "
                            "and has no minibatch std in D_I", "set mocogan.g_start=4, mocogan.coords=false and "
                            "mocogan.minibatch_std=false, or mocogan.frame_nets=dcgan")
        try:
            self.G = VideoGenerator(frames, channels, height, o.content_dim, o.motion_dim, o.noise_dim, o.g_width,
                                    o.framewise, o.g_start, self.categories, residual, o.layered, o.coords, o.sprite)
            self.D_image = BigGANDiscriminator(channels, 0, height, o.d_width, attention=0) if residual else \
                DCGANDiscriminator(channels, height, o.d_width, minibatch_std=o.minibatch_std)
            features = feature_shape(self.D_image, (channels, height, width))
            if self.projection:  # D_I(frame, label of its clip)
                self.D_image = ProjectionD(self.D_image, self.categories, features[0])
            elif self.categories:  # Q: the code's logits from D_I's features (one body pass for both)
                self.D_image = HeadedD(self.D_image, features, self.categories)
            self.D_video = VideoDiscriminator(frames, channels, height, o.d_width, minibatch_std=o.minibatch_std) \
                if o.video_weight and not o.framewise else None
            if o.video_labels:  # D_V(clip, its label)
                self.D_video = ProjectionD(self.D_video, self.categories,
                                           feature_shape(self.D_video, tuple(spec["shape"]))[0])
            self.D_pair = DCGANDiscriminator(2 * channels, height, o.d_width) \
                if o.pair_weight and not o.framewise else None
        except ValueError as exc:
            raise UserError(str(exc), "set data.resolution to 16, 32 or 64, above mocogan.g_start") from None
        self.z_dim, self.frames = self.G.z_dim, frames
        self.game = losses.game(cfg.loss.name)
        self.video_weight, self.image_frames, self.pair_weight = o.video_weight, o.image_frames, o.pair_weight
        self.video_start, self.video_labels, self.independent = o.video_start, o.video_labels, o.independent_frames
        self.info_weight, self.real_weight, self.real_balance, self.clip_weight = \
            o.info_weight, o.real_weight, o.real_balance, o.clip_weight
        self.q_fakes = o.q_fakes
        self.optim_cfg = cfg.optim
        self.phases = [Phase("D", "D", repeats=cfg.train.n_critic), Phase("G", "G")]

    @property
    def groups(self) -> dict[str, Group]:
        discriminators = [d for d in (self.D_image, self.D_video, self.D_pair) if d is not None]
        return adversarial_groups(self.optim_cfg, discriminators, [self.G])

    def random_times(self, n: int, k: int) -> Tensor:
        """k random frame indices for each of n clips (n, k), drawn for the whole global batch (local_rows), so
        data-parallel processes agree with one process."""
        return self.local_rows(n, lambda m: torch.randint(self.frames, (m, k), device=self.device))

    def random_frames(self, clips: Tensor, k: int) -> Tensor:
        """k frames of each clip (N, k, C, H, W) at random times."""
        return clips[torch.arange(len(clips), device=clips.device)[:, None], self.random_times(len(clips), k)]

    def pick_frames(self, clips: Tensor) -> Tensor:
        """`mocogan.image_frames` frames per clip (N·k, C, H, W): what D_I judges."""
        return self.random_frames(clips, self.image_frames).flatten(0, 1)

    def pick_pairs(self, clips: Tensor) -> Tensor:
        """Two frames of each clip stacked on channels (N, 2C, H, W): what D_pair judges."""
        return self.random_frames(clips, 2).flatten(1, 2)

    def draw_code(self, n: int, generator: torch.Generator | None = None, batch: Batch | None = None) -> Tensor | None:
        """Categorical content codes c for n clips as indices (n,) (None: no code): the batch's labels when the model
        is class-conditional, else uniform over the values; training's draws (no generator) are this process's rows
        of the global batch."""
        if not self.categories:
            return None
        if self.labelled and batch is not None:
            return batch.y.to(self.device)
        if generator is None:
            return self.local_rows(n, lambda m: torch.randint(self.categories, (m,), device=self.device))
        return torch.randint(self.categories, (n,), generator=generator).to(self.device)

    def one_hot(self, code: Tensor | None) -> Tensor | None:
        return None if code is None else F.one_hot(code, self.categories).float()

    def frame_codes(self, code: Tensor | None) -> Tensor | None:
        """Each clip's code repeated for the `image_frames` frames D_I judges of it (clip-major, as the picks)."""
        return None if code is None else code.repeat_interleave(self.image_frames)

    def frames_of(self, clips: Tensor, code: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """`pick_frames(clips)` and each picked frame's code (its clip's; None without one)."""
        return self.pick_frames(clips), self.frame_codes(code)

    def image_fakes(self, clips: Tensor, code: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """D_I's fakes and their codes: frames of `clips`, or with `independent_frames` one frame at a random time
        from each of as many new clips, drawn with the same codes (only those frames go through the image G)."""
        if not self.independent:
            return self.frames_of(clips, code)
        n, frame_code = len(clips) * self.image_frames, self.frame_codes(code)
        t = self.random_times(n, 1).squeeze(1)
        return self.G.frames_at(self.noise(n), self.one_hot(frame_code), t), frame_code

    def judge(self, frames: Tensor, code: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """D_I's logits on frames and Q's logits of the code for the same frames (None without Q): one body pass for
        both; a projection D_I is given each frame's code."""
        if self.projection:
            return self.D_image(frames, code), None
        return self.D_image(frames) if self.categories else (self.D_image(frames), None)

    def judge_clips(self, clips: Tensor, code: Tensor | None, ctx: Context) -> Tensor | None:
        """D_V's logits on whole clips (given their labels with `video_labels`), or None while D_V is not in the
        game (no D_V, or before `video_start`)."""
        if self.D_video is None or ctx.step < self.video_start:
            return None
        return self.D_video(clips, code) if self.video_labels else self.D_video(clips)

    def read_code(self, q: Tensor, code: Tensor) -> Tensor:
        """Q's cross-entropy of each judged frame against its code (per frame: `frames_of`, `image_fakes`)."""
        return F.cross_entropy(q, code)

    def real_code_terms(self, q: Tensor, labels: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Q's terms on its readings of real frames (weighted, summed): each frame's label when the model is
        class-conditional, else the clustering and clip-consistency terms."""
        loss, scalars = q.new_zeros(()), {}
        if self.labelled:
            ce = self.read_code(q, labels)  # per frame
            return self.info_weight * ce, {"d_class_loss": ce.detach()}
        if self.real_weight:
            cluster = losses.cluster_entropy(q, balance=self.real_balance)
            loss, scalars["q_real_cluster"] = loss + self.real_weight * cluster, cluster.detach()
        if self.clip_weight:  # the target: the clip's mean reading over its judged frames, held fixed
            k, values = self.image_frames, q.shape[1]
            mean = F.softmax(q.detach().float(), dim=1).view(-1, k, values).mean(1, keepdim=True)
            clip = losses.soft_cross_entropy(mean.expand(-1, k, -1).reshape(-1, values), q)
            loss, scalars["q_real_clip"] = loss + self.clip_weight * clip, clip.detach()
        return loss, scalars

    def loss(self, phase: str, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        return {"D": self.d_loss, "G": self.g_loss}[phase](batch, ctx)

    def d_loss(self, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        code = self.draw_code(len(batch), batch=batch)
        fake_live = self.G(self.noise(len(batch)), self.one_hot(code))
        real_frames, real_code = self.frames_of(batch.x, batch.y)  # the real picks first, then the fakes'
        images, image_code = self.image_fakes(fake_live, code)
        ctx.values[FAKE] = fake_live, code, images, image_code  # D sees them detached; the G phase reuses the graph
        fake, keys = fake_live.detach(), self.log_keys
        real_logits, q_real = self.judge(real_frames, real_code)
        fake_logits, q_fake = self.judge(images.detach(), image_code)
        image_loss = self.game.d(real_logits, fake_logits)
        loss = image_loss
        scalars = {keys.d_real: self.game.mean_output(real_logits), keys.d_fake: self.game.mean_output(fake_logits),
                   keys.diversity: diversity_ratio(fake, batch.x), "d_image_loss": image_loss.detach()}
        if q_fake is not None:  # Q learns to read the code from D_I's features of the detached fakes, and real frames
            info = self.read_code(q_fake, image_code)
            real_terms, real_scalars = self.real_code_terms(q_real, real_code)
            loss = loss + (self.info_weight * info if self.q_fakes else 0) + real_terms
            scalars.update(info_loss=info.detach(), **real_scalars)
        if (real_video := self.judge_clips(batch.x, batch.y, ctx)) is not None:
            fake_video = self.judge_clips(fake, code, ctx)
            video_loss = self.game.d(real_video, fake_video)
            loss = loss + self.video_weight * video_loss
            scalars.update(d_video_loss=video_loss.detach(), d_video_real=self.game.mean_output(real_video),
                           d_video_fake=self.game.mean_output(fake_video))
        if self.D_pair is not None:
            pair_loss = self.game.d(self.D_pair(self.pick_pairs(batch.x)), self.D_pair(self.pick_pairs(fake)))
            loss = loss + self.pair_weight * pair_loss
            scalars["d_pair_loss"] = pair_loss.detach()
        scalars[keys.d_loss] = loss.detach()
        return loss, scalars

    def g_loss(self, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        fake, code, images, image_code = ctx.values.pop(FAKE, (None,) * 4)
        if fake is None:  # no D phase this iteration
            code = self.draw_code(len(batch), batch=batch)
            fake = self.G(self.noise(len(batch)), self.one_hot(code))
            images, image_code = self.image_fakes(fake, code)
        elif not self.independent:  # frames of the clips: picked afresh for G
            images, image_code = self.frames_of(fake, code)
        logits, q = self.judge(images, image_code)
        image_loss = self.game.g(logits)
        loss, scalars = image_loss, {"g_image_loss": image_loss.detach()}
        if q is not None:  # G makes every frame say which code it came from
            info = self.read_code(q, image_code)
            loss = loss + self.info_weight * info
            scalars["g_info_loss"] = info.detach()
        if (fake_video := self.judge_clips(fake, code, ctx)) is not None:
            video_loss = self.game.g(fake_video)
            loss = loss + self.video_weight * video_loss
            scalars["g_video_loss"] = video_loss.detach()
        if self.D_pair is not None:
            pair_loss = self.game.g(self.D_pair(self.pick_pairs(fake)))
            loss = loss + self.pair_weight * pair_loss
            scalars["g_pair_loss"] = pair_loss.detach()
        scalars[self.log_keys.g_loss] = loss.detach()
        return loss, scalars

    @property
    def code_names(self) -> list[str]:
        return ["c0"] if self.categories and not self.labelled else []

    def code_values(self, name: str) -> list[float]:
        if name not in self.code_names:
            raise ValueError(f"this model has no latent code {name!r}" + (
                f"; its code is c0 (categorical, 0-{self.categories - 1})" if self.code_names else ""))
        return [float(i) for i in range(self.categories)]

    def condition(self, request: Request) -> Tensor | None:
        """The categorical content code (N, K) one-hot: the labels or c0 as asked (`codes={"c0": 2}`), else
        random."""
        code = self.draw_code(request.n, request.generator)
        if request.labels is not None:
            code = request.labels.to(self.device)
        for name, value in request.codes.items():  # only models with a learnt code take codes (`sampling`)
            if name != "c0":
                raise ValueError(f"unknown code {name!r}: this model's code is c0 (categorical, 0-"
                                 f"{self.categories - 1})")
            code = torch.full_like(code, categorical_index(name, value, self.categories))
        return self.one_hot(code)

    def progress_request(self, n: int, generator: torch.Generator, inputs: Tensor | None = None) -> Request:
        """Class-conditional progress grids cycle through the classes, one clip per row."""
        if not self.labelled:
            return super().progress_request(n, generator, inputs)
        return Request(n, labels=torch.arange(n) % self.categories, generator=generator)

    def run_generator(self, request: Request) -> Tensor:
        return self.G(request.z, request.cond)
