"""Seeded procedural 3-D videos: moving spheres and boxes on a checkered ground, ray cast.

Every video is drawn from its own random stream `(seed, split, index)`, so the dataset is the
same whatever order or process renders it. Each frame comes with an exact depth map (planar
camera depth in metres, sky at the far plane) and a class map (0 sky, 1 ground, 2 sphere, 3 box).

Scene motion is analytic (no integration drift): objects slide at constant velocity and reflect
off the arena walls, spheres bounce, boxes spin about the vertical, and the camera pans and
creeps forward. Lighting is Lambert + ambient with hard shadows and a specular highlight on
spheres; RGB is supersampled, depth and classes are sampled at pixel centres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from syncvp.seeding import numpy_rng

CLASSES = ("sky", "ground", "sphere", "box")
SKY, GROUND, SPHERE, BOX = range(4)
ARENA = (-3.5, 3.5, 2.0, 9.0)  # x_min, x_max, z_min, z_max
PALETTE = np.array([
    [0.90, 0.15, 0.15], [0.15, 0.55, 0.95], [0.95, 0.80, 0.10], [0.20, 0.80, 0.30],
    [0.80, 0.30, 0.90], [0.95, 0.50, 0.10], [0.10, 0.85, 0.85], [0.95, 0.95, 0.95],
])
_EPS = 1e-4


@dataclass(frozen=True)
class SceneObject:
    shape: int            # SPHERE or BOX
    color: np.ndarray     # albedo, (3,)
    size: np.ndarray      # sphere: (r,); box: half extents (hx, hy, hz)
    pos0: np.ndarray      # (x, z) at frame 0
    vel: np.ndarray       # (vx, vz) per frame
    bounce: tuple[float, float, float]  # amplitude, angular rate, phase (spheres)
    yaw: tuple[float, float]            # angle at frame 0, rate per frame (boxes)


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    ground: tuple[np.ndarray, np.ndarray, float]  # two checker colours, tile size
    sky: tuple[np.ndarray, np.ndarray]            # horizon colour, zenith colour
    light: np.ndarray                             # unit direction towards the light
    camera: tuple[float, float, float, float]     # height, pitch (rad), yaw rate (rad/frame), forward speed
    fov: float                                    # horizontal field of view (rad)


def make_scene(rng: np.random.Generator, *, objects: tuple[int, int], speed: float, camera_pan: float) -> Scene:
    """Draw one scene from `rng`."""
    items = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        shape = SPHERE if rng.random() < 0.5 else BOX
        size = np.array([rng.uniform(0.45, 0.9)]) if shape == SPHERE else rng.uniform([0.35, 0.35, 0.35], [0.8, 0.9, 0.8])
        angle = rng.uniform(0, 2 * np.pi)
        items.append(SceneObject(
            shape=shape, color=PALETTE[rng.integers(len(PALETTE))] * rng.uniform(0.8, 1.0), size=size,
            pos0=np.array([rng.uniform(ARENA[0], ARENA[1]), rng.uniform(ARENA[2] + 1, ARENA[3] - 2)]),
            vel=speed * rng.uniform(0.5, 1.5) * np.array([np.cos(angle), np.sin(angle)]),
            bounce=(rng.uniform(0.0, 1.2), rng.uniform(0.15, 0.35), rng.uniform(0, np.pi)),
            yaw=(rng.uniform(0, np.pi), rng.uniform(-0.15, 0.15)),
        ))
    tones = rng.uniform(0.25, 0.75, size=3)
    ground = (tones * 0.6, np.clip(tones * 1.1, 0, 1), float(rng.uniform(0.8, 1.6)))
    sky = (np.array([0.85, 0.88, 0.95]) * rng.uniform(0.9, 1.0), np.array([0.30, 0.50, 0.90]) * rng.uniform(0.7, 1.0))
    light = np.array([rng.uniform(-0.6, 0.6), 1.0, rng.uniform(-0.6, 0.2)])
    pan = np.deg2rad(camera_pan) * rng.uniform(-1, 1)
    camera = (float(rng.uniform(1.2, 1.8)), float(np.deg2rad(rng.uniform(18, 26))), float(pan),
              float(rng.uniform(0.0, 0.04)))
    return Scene(objects=tuple(items), ground=ground, sky=sky, light=light / np.linalg.norm(light),
                 camera=camera, fov=np.deg2rad(55.0))


# --------------------------------------------------------------------------------------------
# Motion


def _reflect(x: float, lo: float, hi: float) -> float:
    """Position of a point moving on a line and bouncing between walls lo and hi."""
    span = hi - lo
    u = (x - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


def object_pose(obj: SceneObject, frame: int) -> tuple[np.ndarray, float]:
    """Centre (x, y, z) and yaw of an object at a frame."""
    x, z = obj.pos0 + obj.vel * frame
    r = obj.size[0]
    x = _reflect(x, ARENA[0] + r, ARENA[1] - r)
    z = _reflect(z, ARENA[2] + r, ARENA[3] - r)
    if obj.shape == SPHERE:
        amp, rate, phase = obj.bounce
        y = r + amp * abs(np.sin(rate * frame + phase))
        return np.array([x, y, z]), 0.0
    return np.array([x, obj.size[1], z]), obj.yaw[0] + obj.yaw[1] * frame


def camera_frame(scene: Scene, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera origin and rotation (columns: right, up, forward) at a frame."""
    height, pitch, yaw_rate, speed = scene.camera
    yaw = yaw_rate * frame
    fwd = np.array([np.sin(yaw) * np.cos(pitch), -np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
    right = np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
    up = np.cross(fwd, right)
    origin = np.array([0.0, height, 0.0]) + speed * frame * np.array([np.sin(yaw), 0.0, np.cos(yaw)])
    return origin, np.stack([right, up, fwd], axis=1)


# --------------------------------------------------------------------------------------------
# Intersections: rays origin o (3,), directions d (N, 3) -> distance t (N,), inf where missed


def hit_ground(o: np.ndarray, d: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -o[1] / d[:, 1]
    return np.where((d[:, 1] < -1e-6) & (t > _EPS), t, np.inf)


def hit_sphere(o: np.ndarray, d: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    oc = o - center
    b = d @ oc
    disc = b * b - (oc @ oc - radius * radius)
    root = np.sqrt(np.maximum(disc, 0.0))
    t = np.where(-b - root > _EPS, -b - root, -b + root)
    return np.where((disc >= 0) & (t > _EPS), t, np.inf)


def _box_local(o: np.ndarray, d: np.ndarray, center: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])  # world -> box frame
    return rot @ (o - center), d @ rot.T, rot


def hit_box(o: np.ndarray, d: np.ndarray, center: np.ndarray, half: np.ndarray, yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance and world-space normal of the hit (slab method in the box frame)."""
    p, dl, rot = _box_local(o, d, center, yaw)
    dl = np.where(np.abs(dl) < 1e-12, 1e-12, dl)
    t1, t2 = (-half - p) / dl, (half - p) / dl
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    near, far = tmin.max(axis=1), tmax.min(axis=1)
    hit = (far >= np.maximum(near, _EPS)) & (near > _EPS)
    axis = tmin.argmax(axis=1)
    normal = np.zeros_like(dl)
    normal[np.arange(len(dl)), axis] = -np.sign(dl[np.arange(len(dl)), axis])
    return np.where(hit, near, np.inf), normal @ rot


# --------------------------------------------------------------------------------------------
# Rendering


def _rays(scene: Scene, frame: int, size: int, sub: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = size * sub
    coords = (np.arange(n) + 0.5) / n * 2 - 1
    tan = np.tan(scene.fov / 2)
    xs, ys = np.meshgrid(coords * tan, -coords * tan)
    origin, rot = camera_frame(scene, frame)
    local = np.stack([xs.ravel(), ys.ravel(), np.ones(n * n)], axis=1)
    dirs = local @ rot.T
    return origin, dirs / np.linalg.norm(dirs, axis=1, keepdims=True), rot[:, 2]


def _trace(scene: Scene, frame: int, o: np.ndarray, d: np.ndarray):
    """Nearest hit: distance, class, object index (-1 for ground/sky), normal."""
    t = hit_ground(o, d)
    cls = np.where(np.isfinite(t), GROUND, SKY)
    obj = np.full(len(d), -1)
    normal = np.tile([0.0, 1.0, 0.0], (len(d), 1))
    for i, item in enumerate(scene.objects):
        center, yaw = object_pose(item, frame)
        if item.shape == SPHERE:
            ti = hit_sphere(o, d, center, item.size[0])
            ni = (o + ti[:, None] * d - center) / item.size[0]
        else:
            ti, ni = hit_box(o, d, center, item.size, yaw)
        closer = ti < t
        t, cls, obj = np.where(closer, ti, t), np.where(closer, item.shape, cls), np.where(closer, i, obj)
        normal = np.where(closer[:, None], ni, normal)
    return t, cls, obj, normal


def _in_shadow(scene: Scene, frame: int, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
    shadow = np.zeros(len(points), dtype=bool)
    starts = points + normals * 1e-3
    for item in scene.objects:
        center, yaw = object_pose(item, frame)
        if item.shape == SPHERE:
            oc = starts - center
            b = oc @ scene.light
            disc = b * b - ((oc * oc).sum(1) - item.size[0] ** 2)
            t_far = -b + np.sqrt(np.maximum(disc, 0))
            shadow |= (disc >= 0) & (t_far > _EPS)
        else:
            c, s = np.cos(yaw), np.sin(yaw)
            rot = np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
            p = (starts - center) @ rot.T
            dl = rot @ scene.light
            dl = np.where(np.abs(dl) < 1e-12, 1e-12, dl)
            t1, t2 = (-item.size - p) / dl, (item.size - p) / dl
            near, far = np.minimum(t1, t2).max(1), np.maximum(t1, t2).min(1)
            shadow |= (far >= np.maximum(near, 0)) & (far > _EPS)
    return shadow


def _shade(scene: Scene, frame: int, o, d, t, cls, obj, normal) -> np.ndarray:
    horizon, zenith = scene.sky
    sky = horizon + np.clip(d[:, 1:2], 0, 1) * (zenith - horizon)
    color = sky.copy()
    solid = cls != SKY
    if not solid.any():
        return color
    points = o + t[solid, None] * d[solid]
    n = normal[solid]
    dark, light, tile = scene.ground
    checker = ((np.floor(points[:, 0] / tile) + np.floor(points[:, 2] / tile)) % 2)[:, None]
    albedo = np.where(checker > 0, light, dark)
    palette = np.stack([o_.color for o_ in scene.objects]) if scene.objects else np.zeros((1, 3))
    is_obj = obj[solid] >= 0
    albedo = np.where(is_obj[:, None], palette[np.maximum(obj[solid], 0)], albedo)
    lit = ~_in_shadow(scene, frame, points, n)
    diffuse = np.clip(n @ scene.light, 0, 1) * lit
    half = scene.light - d[solid]
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    spec = (cls[solid] == SPHERE) * lit * np.clip((n * half).sum(1), 0, 1) ** 32 * 0.5
    fog = np.exp(-t[solid] / 40.0)[:, None]  # distant ground fades towards the horizon colour
    shaded = albedo * (0.35 + 0.75 * diffuse[:, None]) + spec[:, None]
    color[solid] = fog * shaded + (1 - fog) * horizon
    return color


def render_frame(scene: Scene, frame: int, size: int, supersample: int, far: float):
    """One frame: RGB uint8 [H, W, 3], depth float32 [H, W] in metres, classes uint8 [H, W]."""
    o, d, fwd = _rays(scene, frame, size, supersample)
    hit = _trace(scene, frame, o, d)
    rgb = _shade(scene, frame, o, d, *hit).reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
    if supersample > 1:
        o, d, fwd = _rays(scene, frame, size, 1)
        t, cls, _, _ = _trace(scene, frame, o, d)
    else:
        t, cls = hit[0], hit[1]
    depth = np.minimum(t * (d @ fwd), far).reshape(size, size)
    rgb8 = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
    return rgb8, depth.astype(np.float32), cls.reshape(size, size).astype(np.uint8)


def render_video(seed: int, split: str, index: int, *, resolution: int, frames: int, objects: tuple[int, int],
                 speed: float, camera_pan: float, supersample: int, far: float) -> dict[str, np.ndarray]:
    """One video from the stream `(seed, split, index)`: rgb [F,H,W,3] uint8, depth [F,H,W]
    float32 (m), semantic [F,H,W] uint8 class ids."""
    scene = make_scene(numpy_rng(seed, "synthetic_video", split, index), objects=objects, speed=speed,
                       camera_pan=camera_pan)
    out = [render_frame(scene, f, resolution, supersample, far) for f in range(frames)]
    return {"rgb": np.stack([o[0] for o in out]), "depth": np.stack([o[1] for o in out]),
            "semantic": np.stack([o[2] for o in out])}


def render_split(name: str, source, split: str, progress=None):
    """Render every video of a split into a raw clip store (xarray, not yet written).

    Holds `rgb` (uint8), `depth` (float32 metres, a field over the source's depth range) and
    `semantic` (uint8 class ids, see `CLASSES`).
    """
    from tqdm import tqdm

    from syncvp.config.loader import to_plain
    from syncvp.data import store
    from syncvp.progress import ProgressEvent

    count = source.videos.as_dict()[split]
    near, far = source.depth_range
    videos = []
    for i in tqdm(range(count), desc=f"render {name}/{split}", unit="video", leave=False):
        videos.append(render_video(source.seed, split, i, resolution=source.resolution, frames=source.frames,
                                   objects=tuple(source.objects), speed=source.speed, camera_pan=source.camera_pan,
                                   supersample=source.supersample, far=far))
        if progress is not None:
            progress(ProgressEvent(task=f"render {split}", done=i + 1, total=count))
    arrays = {m: np.stack([v[m] for v in videos]) for m in ("rgb", "depth", "semantic")}
    attrs = {"rgb": {"encoding": "rgb"},
             "depth": {"units": "m", "norm_min": near, "norm_max": far, "encoding": "planar_depth",
                       "meaning": "planar camera depth; sky is at the far plane"},
             "semantic": {"encoding": "class_id", "classes": ",".join(CLASSES)}}
    return store.build_dataset(arrays, dataset=name, split=split, modality_attrs=attrs,
                               video_ids=[f"{split}-{i:04d}" for i in range(count)],
                               provenance={"generator": "syncvp.data.synthetic_video", "source": to_plain(source)})
