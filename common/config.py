"""The configuration: one TOML file, one strict section per service.

Every model forbids unknown keys and bounds every field, so a typo is an error
that names the key rather than a setting silently ignored. Defaults run on any
machine: a synthetic camera, the web viewer on localhost, nothing sent out.

Secrets are ``SecretStr`` (masked whenever printed) and may come from the
environment instead of the file; see ``ENV_SECRETS``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from common.config_view import MAPPING, SECRET, SERVICES, ConfigError, ServiceName
from common.messages import TUNING_LIMITS
from common.paths import Home

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


NormPoint = Annotated[list[Annotated[float, Field(ge=0.0, le=1.0)]], Field(min_length=2,
                                                                          max_length=2)]
Polygon = Annotated[list[NormPoint], Field(min_length=3, max_length=64)]


class GeneralConfig(Section):
    camera: str = Field("cam1", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                        description="Name of this camera: in every message, file name and alert")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logging threshold for every service")
    services: list[ServiceName] = Field(
        default_factory=lambda: list(SERVICES),
        description="Services `pisentry run` starts (and `pisentry status` expects)")


class CurveConfig(Section):
    """CURVE keys (Z85, 40 characters) for tcp:// endpoints; ``pisentry keygen`` makes them."""

    public_key: str = Field("", description="This host's public key (servers bind with it)")
    secret_key: SecretStr = Field(SecretStr(""), description="This host's secret key")
    server_public_key: str = Field(
        "", description="Public key of the host whose tcp endpoints we connect to "
                        "(defaults to our own public_key: a single-host setup)")
    authorized_clients: list[str] = Field(
        default_factory=list, max_length=64,
        description="Public keys of other hosts allowed to connect to our tcp endpoints "
                    "(this host's own public_key always is); any other key is refused")

    @field_validator("public_key", "server_public_key")
    @classmethod
    def _z85(cls, value: str) -> str:
        if value and len(value) != 40:
            raise ValueError("a Z85 CURVE key is 40 characters")
        return value

    @field_validator("authorized_clients")
    @classmethod
    def _z85_list(cls, value: list[str]) -> list[str]:
        for key in value:
            cls._z85(key)
        return value


class BusConfig(Section):
    endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="Override an endpoint by name (capture, frames, video, detect, record, "
                    "notify, ir, web): ipc://PATH or tcp://HOST:PORT. Default: ipc sockets in "
                    "$PISENTRY_HOME/run")
    frames_hwm: int = Field(2, ge=1, le=100,
                            description="Queue of raw frames per subscriber; stale ones drop")
    video_hwm: int = Field(300, ge=30, le=10000,
                           description="Queue of h264 packets per subscriber (a few GOPs)")
    curve: CurveConfig = Field(default_factory=CurveConfig)

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if name not in ("capture", "frames", "video", "detect", "record", "notify", "ir",
                            "web"):
                raise ValueError(f"unknown endpoint name {name!r}")
            if not re.match(r"^(ipc://.+|tcp://[^:]+:\d+)$", url):
                raise ValueError(f"{name}: {url!r} is not ipc://PATH or tcp://HOST:PORT")
            if url.startswith("ipc://@"):
                raise ValueError(f"{name}: {url!r} is an abstract socket, open to every local "
                                 "user; use a path")
        return value


class CaptureConfig(Section):
    source: Literal["synthetic", "file", "v4l2", "url", "picamera2"] = Field(
        "synthetic", description="Where frames come from")
    path: str = Field("", description="file source: a video file or a folder of images")
    url: str = Field("", description="url source: MJPEG over HTTP or RTSP")
    device: int = Field(0, ge=0, le=63, description="v4l2 source: /dev/videoN")
    width: int | None = Field(
        None, ge=64, le=4096,
        description="Main (recorded) stream width, with height the box the camera's picture is "
                    "scaled down into, keeping its aspect ratio (unset: the camera's own size, "
                    "1280x720 for the synthetic one; never larger than the camera's: pisentry "
                    "only scales down)")
    height: int | None = Field(
        None, ge=48, le=3072,
        description="Main (recorded) stream height (unset: the camera's own; see width)")
    fps: float | None = Field(
        None, gt=0, le=60,
        description="Frames per second processed, at most: a faster camera's extra frames are "
                    "dropped before decoding (unset: the camera's own rate; the synthetic "
                    "camera makes 15)")
    file_fps: float = Field(0.0, ge=0, le=120,
                            description="file source: play at this rate (0: the file's own)")
    lores_width: int = Field(
        320, ge=32, le=1280,
        description="Detection stream: with lores_height the box the picture is scaled down "
                    "into, keeping the camera's aspect ratio (a 16:9 camera in 320x240 gives "
                    "320x180, a 4:3 one 320x240; never stretched, never upscaled)")
    lores_height: int = Field(240, ge=24, le=960,
                              description="Detection stream: the box's height (see lores_width)")
    lores_fps: float = Field(
        15.0, ge=0, le=60,
        description="Detection stream frames per second, at most: a faster camera's other "
                    "frames are not decoded for detection, which counts them in its timing, "
                    "so it finds on the shared footage what it finds on every frame, at about "
                    "half the CPU of a 30 fps camera (0: every frame; a camera at 15 fps or "
                    "less is unchanged)")
    live_width: int = Field(640, ge=64, le=1920, description="Live view width")
    live_height: int = Field(480, ge=48, le=1080, description="Live view height")
    live_fps: float = Field(10.0, gt=0, le=30, description="Live view frames per second")
    keyframe_interval: float = Field(1.0, ge=0.2, le=10,
                                     description="Seconds between h264 keyframes (GOP)")
    bitrate: int = Field(2_000_000, ge=100_000, le=25_000_000,
                         description="h264 bits/second at most (the software encoder "
                                     "spends less on a still picture)")
    vflip: bool = Field(False, description="Flip the picture vertically")
    hflip: bool = Field(False, description="Flip the picture horizontally")
    rotation: Literal[0, 90, 180, 270] = Field(0, description="Rotate the picture (degrees)")
    annotate_timestamp: bool = Field(True, description="Burn the date and time into the video")
    annotate_text: str = Field("", max_length=64, description="Extra text in the annotation")
    annotate_brightness: bool = Field(
        True, description="Show room brightness from the IR controller in the annotation")
    object_period: float = Field(
        20.0, ge=2, le=3600, description="synthetic source: seconds between passers-by")
    reconnect_max_seconds: float = Field(
        30.0, ge=1, le=600, description="url source: longest back-off between reconnects")

    @field_validator("width", "height", "lores_width", "lores_height", "live_width",
                     "live_height")
    @classmethod
    def _even(cls, value: int | None) -> int | None:
        if value is not None and value % 2:
            raise ValueError(f"{value} is odd; 4:2:0 video needs even sizes")
        return value

    @model_validator(mode="after")
    def _size_whole(self) -> CaptureConfig:
        if (self.width is None) != (self.height is None):
            raise ValueError("capture.width and capture.height: set both, or neither to "
                             "follow the camera")
        return self


class ZoneConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_ -]{1,32}$", description="Zone name, shown in alerts")
    polygon: Polygon = Field(description="Corners in normalised [x, y] coordinates")
    required: bool = Field(False, description="An event alerts only if it touches a required zone")
    loiter_seconds: float = Field(
        0.0, ge=0, le=86400,
        description="Loitering: alert when something stays in the zone this long (0: off); a "
                    "required zone with it counts only once something has stayed")


class LineConfig(Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_ -]{1,32}$", description="Line name, shown in alerts")
    points: list[NormPoint] = Field(
        min_length=2, max_length=2,
        description="Two [x, y] points (normalised); crossing the segment between them counts")
    direction: Literal["any", "forward", "backward"] = Field(
        "any", description="forward: from the right of first->second point to its left, as "
                           "seen in the picture; backward: the other way")
    required: bool = Field(False, description="An event alerts only if something crossed a "
                                              "required line (or touched a required zone)")


class CameraHealthConfig(Section):
    enabled: bool = Field(True, description="Tell when the camera is covered, blinded, blurred, "
                                            "moved, frozen, offline or sees endless night motion")
    hold_seconds: float = Field(5.0, ge=1, le=3600,
                                description="Covered, blinded or frozen this long: a notice")
    moved_seconds: float = Field(20.0, ge=1, le=3600,
                                 description="Moved or out of focus this long: a notice")
    offline_seconds: float = Field(10.0, ge=0, le=3600,
                                   description="No frame this long: a notice (0: never)")
    night_motion_minutes: float = Field(
        10.0, ge=0, le=720, description="Motion on 90 % of the night for this long: a notice "
                                        "(0: never)")
    repeat_minutes: float = Field(30.0, ge=0, le=1440,
                                  description="The same notice again at most this often")


class ConfirmConfig(Section):
    method: Literal["none", "hog", "onnx"] = Field(
        "none", description="Second stage run on motion regions to confirm a person/object")
    interval_ms: int = Field(500, ge=0, le=60_000, description="Run confirmation at most this often")
    model: str = Field("", description="onnx: path to a YOLO/SSD ONNX model you supply")
    classes: list[str] = Field(default_factory=lambda: ["person"],
                               description="onnx: class names that count")
    class_names: list[str] = Field(default_factory=list,
                                   description="onnx: the model's class list, in index order")
    min_score: float = Field(0.5, ge=0, le=1, description="Minimum detection score")
    input_size: int = Field(320, ge=32, le=1280,
                            description="onnx: the model's square input size (px)")
    require_label: bool = Field(False,
                                description="Alert only once an object is confirmed")


# The detect fields a profile may set; everything else is the same day and night.
PROFILE_FIELDS = ("min_pixel_delta_trigger", "min_trigger_area", "frames_to_start", "masks",
                  "mask_image", "confirm")
CLOCK_TIME = r"^(|([01]\d|2[0-3]):[0-5]\d)$"  # HH:MM, or empty


class NightProfileConfig(Section):
    """The detection settings that differ at night (see detect.night_when); a
    setting left out is the day's. In confirm, only the keys given differ."""

    min_pixel_delta_trigger: int | None = Field(
        None, ge=TUNING_LIMITS["min_pixel_delta_trigger"][0],
        le=TUNING_LIMITS["min_pixel_delta_trigger"][1],
        description="Night: luma change (0-255) that marks a pixel as moving")
    min_trigger_area: float | None = Field(
        None, ge=TUNING_LIMITS["min_trigger_area"][0], le=TUNING_LIMITS["min_trigger_area"][1],
        description="Night: fraction of the image that must move to trigger")
    frames_to_start: int | None = Field(
        None, ge=TUNING_LIMITS["frames_to_start"][0], le=TUNING_LIMITS["frames_to_start"][1],
        description="Night: consecutive motion frames before an event starts")
    masks: list[Polygon] | None = Field(
        None, description="Night: polygons (normalised) where motion is ignored, instead of "
                          "the day's (a porch light's glow, insects around the lamp)")
    mask_image: str | None = Field(None, description="Night: image file, black pixels ignored")
    confirm: ConfirmConfig | None = Field(
        None, description="Night: confirmation keys that differ from the day's")

    @model_validator(mode="before")
    @classmethod
    def _profile_fields_only(cls, data: Any) -> Any:
        # A real detect key that cannot differ by profile deserves more than "unknown key".
        if isinstance(data, dict):
            fixed = sorted(k for k in data if k in DetectConfig.model_fields
                           and k not in PROFILE_FIELDS)
            if fixed:
                raise ValueError(f"{', '.join(fixed)} cannot differ at night; a profile sets "
                                 f"only {', '.join(PROFILE_FIELDS)}")
        return data


class DetectConfig(Section):
    algorithm: Literal["default", "running_average", "static_base", "three_frame", "mog2"] = Field(
        "default", description="Motion algorithm")
    detector: str = Field(
        "", description="User detection function as module:function; replaces the algorithm")
    working_height: int = Field(120, ge=48, le=480,
                                description="Height of the image the detector works on (px)")
    min_trigger_area: float = Field(
        0.002, ge=TUNING_LIMITS["min_trigger_area"][0], le=TUNING_LIMITS["min_trigger_area"][1],
        description="Fraction of the image that must move to trigger")
    min_pixel_delta_trigger: int = Field(
        25, ge=TUNING_LIMITS["min_pixel_delta_trigger"][0],
        le=TUNING_LIMITS["min_pixel_delta_trigger"][1],
        description="Luma change (0-255) that marks a pixel as moving")
    frames_to_start: int = Field(
        2, ge=TUNING_LIMITS["frames_to_start"][0], le=TUNING_LIMITS["frames_to_start"][1],
        description="Consecutive motion frames before an event starts (the camera's frames: "
                    "one analysed after capture.lores_fps skipped some counts for them too)")
    quiet_seconds: float = Field(3.0, ge=0, le=600,
                                 description="Seconds without motion before an event ends")
    max_event_time: float = Field(
        120.0, ge=1, le=86400, description="End an event and re-base after this many seconds")
    cooldown_seconds: float = Field(0.0, ge=0, le=3600,
                                    description="Seconds after an event before another may start")
    masks: list[Polygon] = Field(default_factory=list,
                                 description="Polygons (normalised) where motion is ignored")
    mask_image: str = Field("", description="Image file: black pixels are ignored")
    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list,
                                    description="Lines whose crossing (with a direction) is "
                                                "reported, and can be required for alerts")
    confirm: ConfirmConfig = Field(default_factory=ConfirmConfig)
    camera_health: CameraHealthConfig = Field(default_factory=CameraHealthConfig)
    snapshot_quality: int = Field(85, ge=10, le=100, description="JPEG quality of snapshots")
    mask_snapshot: bool = Field(
        False, description="Also publish the motion mask of each event start (Snapshot kind "
                           "'mask') for the recorder to store")
    update_seconds: float = Field(1.0, ge=0.1, le=60,
                                  description="Send a motion update at most this often")
    ir_settle_frames: int = Field(
        5, ge=0, le=300, description="Frames ignored after the IR illuminator switches")
    pir: Literal["never", "at_night", "always"] = Field(
        "never", description="Alert on pixel motion only if the PIR sensor (ir.pir_pin) fired "
                             "within pir_window_seconds of it: never, at_night (IR light on) "
                             "or always; events still record, and while the PIR is "
                             "unreachable pixels alone alert")
    pir_window_seconds: float = Field(
        5.0, gt=0, le=60, description="How far apart (either order) the PIR trigger and the "
                                      "pixel motion may be to count as one")
    night: NightProfileConfig = Field(default_factory=NightProfileConfig)
    night_when: Literal["ir", "schedule", "never"] = Field(
        "ir", description="When detect uses the night profile ([detect.night]): ir (while the "
                          "IR light is on), schedule (from night_start to night_end, local "
                          "time) or never; it switches without a restart")
    night_start: str = Field("", pattern=CLOCK_TIME,
                             description="schedule: HH:MM (local) the night profile starts")
    night_end: str = Field("", pattern=CLOCK_TIME,
                           description="schedule: HH:MM (local) the day profile is back")

    @model_validator(mode="after")
    def _night_confirm(self) -> DetectConfig:
        # The keys given are the night's; the others stay the day's. Merged
        # here, as the services see the config as plain data without pydantic.
        night = self.night.confirm
        if night is not None:
            self.night.confirm = self.confirm.model_copy(
                update={k: getattr(night, k) for k in night.model_fields_set})
        return self

    @model_validator(mode="after")
    def _schedule_set(self) -> DetectConfig:
        if self.night_when == "schedule":
            if not self.night_start or not self.night_end:
                raise ValueError("night_when is \"schedule\": set night_start and night_end "
                                 "(HH:MM, local time)")
            if self.night_start == self.night_end:
                raise ValueError(f"night_start and night_end are both {self.night_start}: "
                                 "the night would last no time or all day")
        return self


class RetentionConfig(Section):
    max_age_days: float = Field(30.0, ge=0, le=3650, description="Delete clips older (0: never)")
    max_total_gb: float = Field(0.0, ge=0, le=100_000,
                                description="Keep recordings under this size (0: no limit)")
    min_free_mb: float = Field(500.0, ge=0, le=10_000_000,
                               description="Keep at least this much disk free")
    reserve_seconds: float = Field(
        10.0, ge=1, le=600, description="Headroom kept under the limits, in seconds of video")


class RecordConfig(Section):
    storage_dir: str = Field("", description="Where clips go (default $PISENTRY_HOME/recordings)")
    staging_dir: str = Field("", description="Optional tmpfs for segments before they are kept")
    rec_sec_before: float = Field(3.0, ge=0, le=60, description="Pre-roll seconds")
    rec_sec_after: float = Field(5.0, ge=0, le=600, description="Post-roll seconds")
    max_clip_seconds: float = Field(300.0, ge=5, le=3600, description="Split clips longer than this")
    preroll_max_mb: float = Field(32.0, ge=1, le=1024, description="Memory cap of the pre-roll ring")
    events: bool = Field(True, description="Record event clips")
    event_mode: Literal["all", "edge"] = Field(
        "all", description="all: one clip per event; edge: short clips around start and end")
    continuous: bool = Field(False, description="Also record continuously in quarter-hour clips")
    periodic_snapshot_minutes: float = Field(0.0, ge=0, le=1440,
                                             description="Save a snapshot this often (0: never)")
    debug_mask_image: bool = Field(False, description="Save the motion mask next to the snapshot")
    continuous_minutes: Literal[5, 10, 15, 20, 30, 60] = Field(
        15, description="Continuous clips are cut at multiples of this many minutes past the hour")
    fragment_seconds: float = Field(
        1.0, ge=0.2, le=10, description="MP4 fragment length: at most this much is lost on a crash")
    event_timeout_seconds: float = Field(
        900.0, ge=10, le=86400,
        description="Close an event clip when detect sends nothing about it for this long")
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


class TelegramConfig(Section):
    enabled: bool = Field(False, description="Send alerts to Telegram and obey its commands")
    token: SecretStr = Field(SecretStr(""), description="Bot token (or PISENTRY_TELEGRAM_TOKEN)")
    chat_ids: list[int] = Field(default_factory=list, max_length=32,
                                description="Chats that get alerts and whose commands are "
                                            "obeyed; every other chat is ignored")
    base_url: str = Field("https://api.telegram.org/bot", pattern=r"^https?://",
                          description="Bot API base URL; https, or http to a Bot API server "
                                      "on this machine (127.0.0.1, ::1, localhost)")
    allowed_user_ids: list[int] = Field(
        default_factory=list, max_length=64,
        description="When set, commands and buttons are obeyed only from these Telegram "
                    "user ids, also inside an allowed group chat (empty: any member of an "
                    "allowed chat)")
    send_clip: bool = Field(True, description="Send the clip when it is finished")
    max_clip_mb: float = Field(49.0, gt=0, le=2000,
                               description="Clips above this size go out as a text note "
                                           "(the public Bot API refuses uploads over 50 MB)")
    cooldown_seconds: float = Field(30.0, ge=0, le=86400,
                                    description="Per-camera alert cooldown; events within it "
                                                "are counted into the next alert")
    quiet_hours: str = Field("", pattern=r"^(|\d\d:\d\d-\d\d:\d\d)$",
                             description="HH:MM-HH:MM when alerts are silent")
    quiet_mode: Literal["silent", "skip"] = Field(
        "silent", description="In quiet hours: send without a sound (silent) or not at all")
    label_buttons: bool = Field(
        True, description="Real / false alarm buttons under each alert (training data set)")
    poll_timeout: float = Field(20.0, ge=0, le=60,
                                description="Long-poll seconds when asking for commands")
    retry_seconds: float = Field(300.0, ge=1, le=86400,
                                 description="Give up on one message after retrying this long")

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        host = urlsplit(value).hostname or ""
        if value.startswith("http://") and host not in LOOPBACK_HOSTS:
            raise ValueError("the token travels in every request: use https (plain http "
                             "only to a Bot API server on this machine)")
        return value

    @model_validator(mode="after")
    def _complete(self) -> TelegramConfig:
        if self.enabled and not (self.token.get_secret_value() and self.chat_ids):
            raise ValueError("enabled needs token (or PISENTRY_TELEGRAM_TOKEN) and chat_ids")
        return self


class EmailConfig(Section):
    enabled: bool = Field(False, description="Mail each alert with its snapshot")
    host: str = Field("", max_length=253, description="SMTP server")
    port: int = Field(587, ge=1, le=65535, description="SMTP port (587 starttls, 465 ssl)")
    security: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="TLS mode; a password is never sent with none")
    ca_file: str = Field("", description="CA bundle for a self-signed mail server (PEM)")
    username: str = Field("", max_length=256, description="SMTP login (empty: no login)")
    password: SecretStr = Field(SecretStr(""), description="or PISENTRY_SMTP_PASSWORD")
    sender: str = Field("", max_length=256, description="From address (default: username)")
    recipients: list[str] = Field(default_factory=list, max_length=50,
                                  description="To addresses")
    timeout_seconds: float = Field(30.0, gt=0, le=600, description="SMTP network timeout")

    @model_validator(mode="after")
    def _complete(self) -> EmailConfig:
        if self.enabled and not (self.host and self.recipients):
            raise ValueError("enabled needs host and recipients")
        if self.security == "none" and self.password.get_secret_value():
            raise ValueError("a password needs security = starttls or ssl")
        return self


class MqttConfig(Section):
    enabled: bool = Field(False, description="Publish events and state for Home Assistant")
    host: str = Field("127.0.0.1", max_length=253, description="MQTT broker")
    port: int = Field(1883, ge=1, le=65535, description="MQTT broker port")
    username: str = Field("", max_length=256, description="Broker login (empty: anonymous)")
    password: SecretStr = Field(SecretStr(""), description="or PISENTRY_MQTT_PASSWORD")
    topic_prefix: str = Field("pisentry", pattern=r"^[A-Za-z0-9_/-]{1,64}$",
                              description="Topics are PREFIX/CAMERA/...")
    discovery_prefix: str = Field("homeassistant", pattern=r"^[A-Za-z0-9_/-]{1,64}$",
                                  description="Home Assistant's discovery prefix")
    discovery: bool = Field(True, description="Publish Home Assistant discovery configs")
    keepalive: int = Field(30, ge=5, le=3600, description="Seconds between MQTT pings")
    tls: bool = Field(False, description="Connect with TLS (brokers listen on 8883 for it); "
                                         "the broker's certificate is checked")
    ca_file: str = Field("", description="CA bundle (PEM) for a broker with its own "
                                         "certificate authority (empty: the system's)")


class HooksConfig(Section):
    on_event_start: str = Field("", description="Shell command run when an event starts")
    on_event_end: str = Field("", description="Shell command run when an event ends")
    on_recording: str = Field("", description="Shell command run when a clip is finished")
    timeout_seconds: float = Field(30.0, gt=0, le=3600, description="Kill a hook after this")
    max_running: int = Field(4, ge=1, le=64, description="Hooks beyond this are skipped")


class BackupConfig(Section):
    enabled: bool = Field(False, description="Copy finished clips to a NAS over SSH")
    protocol: Literal["sftp", "scp"] = Field(
        "sftp", description="sftp, or scp for SSH servers without the SFTP subsystem")
    host: str = Field("", max_length=253, description="The NAS")
    port: int = Field(22, ge=1, le=65535, description="Its SSH port")
    username: str = Field("", max_length=64, description="SSH login on the NAS")
    key_file: str = Field("", description="Private key for the NAS login")
    known_hosts: str = Field("", description="known_hosts file with the NAS host key "
                                             "(required: unknown keys are refused)")
    remote_dir: str = Field("pisentry", min_length=1,
                            description="Clips go to remote_dir/YYYY/MM/DD")
    trigger: Literal["immediate", "count", "minutes"] = Field(
        "immediate", description="Upload at once, after trigger_count clips, or at "
                                 "trigger_minutes past each hour")
    trigger_count: int = Field(1, ge=1, le=1000, description="count trigger: clips per batch")
    trigger_minutes: list[Annotated[int, Field(ge=0, le=59)]] = Field(
        default_factory=list, max_length=60, description="minutes trigger: e.g. [0, 20, 40]")
    pieces: bool = Field(True, description="Ship clips of an ongoing event in pieces as "
                                           "they grow (a stolen camera has sent its start)")
    encrypt_public_key: str = Field("", description="PEM public key: encrypt before upload")
    limit_days: float = Field(0.0, ge=0, le=3650, description="Remote retention (0: keep)")
    delete_local_after_upload: bool = Field(
        False, description="Delete the local clip once the NAS has it")
    retry_max_seconds: float = Field(300.0, ge=0.5, le=86400,
                                     description="Longest back-off between upload attempts")
    connect_timeout: float = Field(10.0, gt=0, le=300, description="SSH connect timeout")
    rate_limit_kbps: float = Field(0.0, ge=0, le=10_000_000,
                                   description="Cap upload speed in KB/s (0: no cap)")

    @model_validator(mode="after")
    def _complete(self) -> BackupConfig:
        if self.enabled and not (self.host and self.known_hosts):
            raise ValueError("enabled needs host and known_hosts (the NAS host key is "
                             "always checked)")
        if self.trigger == "minutes" and not self.trigger_minutes:
            raise ValueError("trigger = minutes needs trigger_minutes")
        return self


class NotifyConfig(Section):
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    email: EmailConfig = Field(default_factory=EmailConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    presence_hosts: list[str] = Field(
        default_factory=list, max_length=32,
        description="Phones' addresses (IPv4 or MAC): disarm while any is on the LAN, "
                    "arm when all are gone")
    presence_away_seconds: float = Field(
        600.0, ge=10, le=86400, description="Seen by none for this long: everyone is away")
    arm_schedule: list[Annotated[str, Field(pattern=r"^\d\d:\d\d-\d\d:\d\d$")]] = Field(
        default_factory=list, max_length=16,
        description="HH:MM-HH:MM windows: armed at each start, disarmed at each end "
                    "(local time)")


class ServoConfig(Section):
    """One hobby servo on the IR controller (an entry of ``ir.servos``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,16}$",
                      description="cover, pan, tilt ...: /rotate and the web address servos by name")
    board_pin: int = Field(ge=0, le=63, description="Microcontroller pin of the servo's signal wire")
    min_angle: int = Field(0, ge=0, le=180, description="Lowest angle this servo may be sent to")
    max_angle: int = Field(180, ge=0, le=180, description="Highest angle this servo may be sent to")
    angle_on: int = Field(90, ge=0, le=180, description="Angle when armed")
    angle_off: int = Field(0, ge=0, le=180, description="Angle when disarmed")
    follow_arming: bool = Field(
        True, description="Move to angle_on when armed and angle_off when disarmed (a cover); "
                          "set false for pan/tilt servos moved only by /rotate")

    @field_validator("max_angle", "angle_on", "angle_off")
    @classmethod
    def _within_limits(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_angle", 0)
        high = 180 if info.field_name == "max_angle" else info.data.get("max_angle", 180)
        if not low <= value <= high:
            raise ValueError(f"{value} is outside min_angle..max_angle ({low}..{high})")
        return value


class IrConfig(Section):
    enabled: bool = Field(
        True, description='Run the IR/servo controller; with serial_port "sim" a simulated '
                          "device supplies brightness, so a fresh install shows it working")
    serial_port: str = Field(
        "sim", min_length=1, max_length=256,
        description='Serial device (/dev/serial0, /dev/ttyUSB0, /dev/serial/by-id/...), or "sim" '
                    "for the built-in simulator")
    baudrate: int = Field(9600, ge=300, le=1_000_000,
                          description="Serial speed; must match the firmware's Serial.begin()")
    serial_timeout: float = Field(
        1.0, gt=0, le=30, description="Seconds to wait for the device to answer a command")
    updates_per_sec: float = Field(2.0, ge=0.1, le=50,
                                   description="Brightness reports (and bus messages) per second")
    reconnect_max_seconds: float = Field(
        10.0, ge=0.5, le=600, description="Longest back-off between attempts to reopen the port")
    ir_control: Literal["service", "firmware"] = Field(
        "service", description="Who switches IR on darkness: this service or the firmware")
    ir_on_below: float = Field(0.2, ge=0, le=1, description="Switch IR on below this brightness")
    ir_off_above: float = Field(0.3, ge=0, le=1, description="Switch IR off above this brightness")
    ir_on_level: float = Field(1.0, gt=0, le=1, description="IR output (PWM duty) when on")
    servos: list[ServoConfig] = Field(default_factory=list, max_length=4,
                                      description="Servos on the controller (the firmware drives "
                                                  "up to 4)")
    pir_pin: int = Field(-1, ge=-1, le=63,
                         description="Microcontroller pin of a PIR motion sensor's output, "
                                     "published on the bus for detect.pir (-1: none)")

    @field_validator("ir_off_above")
    @classmethod
    def _hysteresis(cls, value: float, info: ValidationInfo) -> float:
        on_below = info.data.get("ir_on_below", 0.0)
        if value <= on_below:
            raise ValueError(f"must be above ir_on_below ({on_below}), or IR would flap")
        return value

    @field_validator("servos")
    @classmethod
    def _unique_servos(cls, value: list[ServoConfig]) -> list[ServoConfig]:
        for attr in ("name", "board_pin"):
            seen = [getattr(s, attr) for s in value]
            dupes = sorted({str(x) for x in seen if seen.count(x) > 1})
            if dupes:
                raise ValueError(f"two servos share the {attr} {', '.join(dupes)}")
        return value


class WebCameraConfig(Section):
    """Another camera shown by this web service (a hub), reached over tcp with CURVE."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$",
                      description="The camera's general.camera name")
    endpoints: dict[str, str] = Field(
        description="The camera's endpoints by name (frames for the live view; capture, "
                    "detect, record, notify, ir for status and events): tcp://HOST:PORT")
    server_public_key: str = Field("", description="The camera's CURVE public key (Z85)")

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: dict[str, str]) -> dict[str, str]:
        return BusConfig._endpoints(value)

    @field_validator("server_public_key")
    @classmethod
    def _z85(cls, value: str) -> str:
        return CurveConfig._z85(value)


class WebConfig(Section):
    host: str = Field("127.0.0.1", description="Listen address (0.0.0.0 for the LAN)")
    port: int = Field(8080, ge=1, le=65535,
                      description="Listen port; each instance on a machine needs its own")
    api_key: SecretStr = Field(SecretStr(""), description="API key for machines, sent in the "
                               "api_key_header_name header (or PISENTRY_WEB_API_KEY), at least "
                               "32 characters (`openssl rand -hex 24`); empty: no key accepted")
    api_key_header_name: str = Field("X-API-Key", pattern=r"^[A-Za-z0-9-]{1,64}$",
                                     description="HTTP header that carries the API key")
    certfile_path: str = Field("", description="TLS certificate (PEM); with keyfile_path "
                                               "serves https and marks cookies Secure")
    keyfile_path: str = Field("", description="TLS private key (PEM)")
    max_stream_fps: float = Field(10.0, gt=0, le=30,
                                  description="Cap of the live streams' frames per second")
    jpeg_quality: int = Field(80, ge=10, le=100, description="JPEG quality of the live view")
    session_hours: float = Field(24.0, gt=0, le=24 * 365,
                                 description="How long a login lasts")
    local_camera: bool = Field(True, description="Show this host's own camera (false: a hub "
                                                 "that only shows web.cameras)")
    cameras: list[WebCameraConfig] = Field(
        default_factory=list, description="Other cameras shown in the hub grid")
    trusted_proxies: list[str] = Field(
        default_factory=list, max_length=16,
        description="Addresses of reverse proxies in front of the web service whose "
                    "X-Forwarded-For/-Proto headers are believed (empty: none, the peer's "
                    "own address is the client's)")

    @field_validator("api_key")
    @classmethod
    def _long_key(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < 32:
            raise ValueError("an API key must be at least 32 characters (guessable otherwise); "
                             "make one with `openssl rand -hex 24`")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"{address!r} is not an IP address") from None
        return value


class HealthConfig(Section):
    """The Pi's own health, checked by notify and shown on the health page."""

    throttled_path: str = Field(
        "/sys/devices/platform/soc/soc:firmware/get_throttled",
        description="The firmware's throttled flags in hex (what `vcgencmd get_throttled` "
                    "reports); absent off a Pi")
    thermal_path: str = Field("/sys/class/thermal/thermal_zone0/temp",
                              description="CPU temperature in millidegrees C")
    meminfo_path: str = Field("/proc/meminfo", description="MemTotal and MemAvailable")
    check_seconds: float = Field(5.0, ge=1, le=3600, description="How often notify checks")
    temperature_alert_c: float = Field(80.0, ge=0, le=150,
                                       description="Alert at this CPU temperature (0: never)")
    disk_free_alert_mb: float = Field(
        200.0, ge=0, le=10_000_000, description="Alert when the recordings disk has less "
                                                "free (0: never)")
    memory_alert_mb: float = Field(30.0, ge=0, le=1_000_000,
                                   description="Alert when less memory is available (0: never)")
    watch_timeout_seconds: float = Field(
        10.0, ge=2, le=3600, description="A hub alerts when a camera of web.cameras sends no "
                                         "heartbeat for this long")
    selftest_time: str = Field(
        "", pattern=r"^(|\d\d:\d\d)$",
        description="HH:MM (local) of the daily self-test: a passer-by drawn into the frames "
                    "and followed through detect, record, notify and the NAS (empty: only "
                    "on demand, from the web or Telegram /selftest)")
    selftest_timeout_seconds: float = Field(
        90.0, ge=10, le=3600, description="A self-test stage not reached this long after the "
                                          "start fails the run (and is alerted)")


class Config(Section):
    general: GeneralConfig = Field(default_factory=GeneralConfig)
    bus: BusConfig = Field(default_factory=BusConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    detect: DetectConfig = Field(default_factory=DetectConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    ir: IrConfig = Field(default_factory=IrConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)

    @model_validator(mode="after")
    def _pir_wired(self) -> Config:
        # Asking for a vote nobody can cast would hold back every alert.
        if self.detect.pir != "never" and (not self.ir.enabled or self.ir.pir_pin < 0):
            raise ValueError(f"detect.pir is {self.detect.pir!r} but no PIR sensor is set up: "
                             "set ir.pir_pin (and ir.enabled), or detect.pir = \"never\"")
        return self

    @model_validator(mode="after")
    def _ir_for_night(self) -> Config:
        # A night profile switched by an IR state that never comes would never be used.
        if (self.detect.night_when == "ir" and not self.ir.enabled
                and any(value is not None for _, value in self.detect.night)):
            raise ValueError("detect.night_when is \"ir\" but ir.enabled is false: nothing "
                             "would tell detect it is night; set detect.night_when = "
                             "\"schedule\" (with night_start and night_end) or enable ir")
        return self


# Environment variables that override secrets in the file.
ENV_SECRETS = {
    "PISENTRY_TELEGRAM_TOKEN": ("notify", "telegram", "token"),
    "PISENTRY_SMTP_PASSWORD": ("notify", "email", "password"),
    "PISENTRY_MQTT_PASSWORD": ("notify", "mqtt", "password"),
    "PISENTRY_WEB_API_KEY": ("web", "api_key"),
    "PISENTRY_CURVE_SECRET_KEY": ("bus", "curve", "secret_key"),
}


def _apply_env(raw: dict[str, Any]) -> None:
    for var, path in ENV_SECRETS.items():
        value = os.environ.get(var)
        if not value:
            continue
        node = raw
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                return  # the file's own type error will be reported
        node[path[-1]] = value


def field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """Every problem as (dotted key, line), the line in the words ``pisentry
    check-config`` prints: the web settings show these next to each field."""
    out = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        problem = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append((key, f"{key}: {problem}"))
    return out


def _first_error(exc: ValidationError) -> str:
    errors = field_errors(exc)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{errors[0][1]}{more}"


def validate_config(raw: dict[str, Any]) -> tuple[Config | None, list[tuple[str, str]]]:
    """``raw`` (secrets from the environment applied, as on load) as a
    ``Config``, or None and every problem (see ``field_errors``)."""
    _apply_env(raw)
    try:
        return Config.model_validate(raw), []
    except ValidationError as exc:
        return None, field_errors(exc)


def parse_config(raw: dict[str, Any], source: str = "config") -> Config:
    _apply_env(raw)
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from None


def load_config(path: str | Path | None = None, home: Home | None = None) -> Config:
    """The effective config: ``path``, else ``$PISENTRY_HOME/config.toml`` if it
    exists, else the defaults. Raises ``ConfigError`` with one line."""
    if path is None:
        candidate = (home or Home.from_env()).config_file
        if not candidate.exists():
            return parse_config({}, "defaults")
        path = candidate
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_config(raw, str(path))


# scheme://user:password@ : the password part of a URL's userinfo.
URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/@]*@")


def mask_url(url: str) -> str:
    """``url`` with the password of its userinfo (rtsp://admin:pass@...) masked."""
    return URL_PASSWORD.sub(r"\1:***@", url)


def masked_dump(config: Config) -> dict[str, Any]:
    """The config as plain data with every secret masked, for printing: the
    SecretStr fields serialise as "**********", and a password inside any URL
    (a camera's rtsp://admin:pass@...) is masked too."""
    def mask(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: mask(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mask(v) for v in value]
        return mask_url(value) if isinstance(value, str) else value
    return mask(config.model_dump(mode="json"))  # type: ignore[no-any-return]


def worker_view(config: Config) -> dict[str, Any]:
    """The config as JSON-able data for ``common.config_view``, secrets revealed
    and marked, mappings marked (JSON alone cannot tell them from sections)."""
    def plain(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return {name: plain(v) for name, v in value}
        if isinstance(value, SecretStr):
            return {SECRET: value.get_secret_value()}
        if isinstance(value, dict):
            return {MAPPING: {k: plain(v) for k, v in value.items()}}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value
    return plain(config)  # type: ignore[no-any-return]


def _worker_view_main(argv: list[str]) -> int:
    """``python -m common.config --worker-view [PATH]``: what ``load_view`` runs."""
    import json
    import sys

    if argv[:1] != ["--worker-view"] or len(argv) > 2:
        print("usage: python -m common.config --worker-view [PATH]", file=sys.stderr)
        return 64
    try:
        config = load_config(argv[1] if len(argv) == 2 else None)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    json.dump(worker_view(config), sys.stdout)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(_worker_view_main(sys.argv[1:]))
