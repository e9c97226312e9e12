// pisentry IR and servo controller, protocol 1 (see docs/serial-protocol.md).
//
// Reads room brightness from a photoresistor divider, drives the IR LED array
// with PWM (through a MOSFET: the LEDs draw far more than a pin can give),
// moves up to four hobby servos, and reports a PIR motion sensor's output. Talks to the Pi over a serial line, one
// ASCII line per message, each ending in "*" + NMEA XOR checksum.
//
// Boards: any Arduino (Uno, Nano, Pro Mini). On an ATtiny85 (Trinket) use
// SoftwareSerial for Serial and Adafruit_SoftServo instead of Servo.h; the
// protocol code below does not change. RAM use is kept small on purpose.

#include <Servo.h>

#define FIRMWARE "1.1.0"
#define PROTOCOL 1
#define BAUDRATE 9600     // must match ir.baudrate
#define LIGHT_PIN A0      // photoresistor divider (brighter = higher reading)
#define IR_PIN 9          // PWM pin to the IR LED MOSFET gate
#define SERVO_SLOTS 4
#define MAX_COMMAND 40    // longer lines are refused with "ERR long"
#define PIR_DEBOUNCE_MS 50  // a PIR output change must hold this long to be reported

static char rx[MAX_COMMAND + 1];
static uint8_t rxLen = 0;
static bool rxOverflow = false;

static uint16_t rateMs = 0;          // 0: no brightness reports
static unsigned long lastReport = 0;
static uint8_t irPwm = 0;
static bool autoMode = false;        // firmware switches IR itself
static uint16_t autoOnBelow = 0, autoOffAbove = 0;
static uint8_t autoPwm = 255;

// PIR sensor (e.g. an HC-SR501: its output is high while it sees warm
// movement). Not read until the host sends "PIR <pin>": an unwired pin floats.
static int8_t pirPin = -1;
static bool pirState = false;         // the last state reported
static bool pirRaw = false;           // the pin as last read
static unsigned long pirRawSince = 0; // when the pin last changed

static Servo servos[SERVO_SLOTS];
static int8_t servoPin[SERVO_SLOTS] = {-1, -1, -1, -1};

// -- output -------------------------------------------------------------------

static uint8_t xorOf(const char *s) {
  uint8_t cs = 0;
  while (*s) cs ^= (uint8_t)*s++;
  return cs;
}

// Sends "body*CS\n".
static void sendLine(const char *body) {
  static const char hex[] = "0123456789ABCDEF";
  uint8_t cs = xorOf(body);
  Serial.print(body);
  Serial.write('*');
  Serial.write(hex[cs >> 4]);
  Serial.write(hex[cs & 15]);
  Serial.write('\n');
}

static void sendPrefixed(const char *prefix, const char *body) {
  char line[MAX_COMMAND + 16];
  snprintf(line, sizeof line, "%s%s", prefix, body);
  sendLine(line);
}

static void sendVersion(const char *verb) {
  char line[40];
  snprintf(line, sizeof line, "%s pisentry-ir %d %s", verb, PROTOCOL, FIRMWARE);
  sendLine(line);
}

// -- commands -----------------------------------------------------------------

// Parses up to `max` unsigned decimal arguments after the verb; returns how
// many, or -1 if one is not a plain number.
static int8_t parseArgs(char *args, long *out, uint8_t max) {
  uint8_t n = 0;
  while (*args) {
    if (n == max) return -1;
    long value = 0;
    uint8_t digits = 0;
    while (*args >= '0' && *args <= '9') {
      value = value * 10 + (*args++ - '0');
      if (++digits > 5) return -1;
    }
    if (digits == 0 || (*args != ' ' && *args != 0)) return -1;
    if (*args == ' ') args++;
    out[n++] = value;
  }
  return n;
}

static void setIr(uint8_t pwm) {
  irPwm = pwm;
  analogWrite(IR_PIN, pwm);
}

static void handle(char *body) {
  char copy[MAX_COMMAND + 1];
  strncpy(copy, body, sizeof copy);  // for echoing in OK / ERR
  char *space = strchr(body, ' ');
  static char empty[] = "";
  char *args = empty;
  if (space) { *space = 0; args = space + 1; }
  long v[3];

  if (!strcmp(body, "VERSION") && !*args) { sendVersion("VERSION"); return; }
  if (!strcmp(body, "PING") && !*args) { sendLine("PONG"); return; }
  if (!strcmp(body, "AUTO") && !strcmp(args, "OFF")) {
    autoMode = false;
    sendPrefixed("OK ", copy);
    return;
  }
  int8_t n = parseArgs(args, v, 3);
  bool known = !strcmp(body, "RATE") || !strcmp(body, "IR") || !strcmp(body, "AUTO") ||
               !strcmp(body, "SERVO") || !strcmp(body, "PIR") || !strcmp(body, "VERSION") || !strcmp(body, "PING");
  if (!known) { sendPrefixed("ERR unknown ", copy); return; }
  if (n < 0) { sendPrefixed("ERR syntax ", copy); return; }

  if (!strcmp(body, "RATE") && n == 1) {
    if (v[0] != 0 && (v[0] < 20 || v[0] > 60000)) { sendPrefixed("ERR range ", copy); return; }
    rateMs = v[0];
    lastReport = millis() - rateMs;  // first report at once
    sendPrefixed("OK ", copy);
  } else if (!strcmp(body, "IR") && n == 1) {
    if (v[0] > 255) { sendPrefixed("ERR range ", copy); return; }
    autoMode = false;
    setIr(v[0]);
    sendPrefixed("OK ", copy);
  } else if (!strcmp(body, "AUTO") && n == 3) {
    if (v[0] >= v[1] || v[1] > 1023 || v[2] > 255) { sendPrefixed("ERR range ", copy); return; }
    autoOnBelow = v[0]; autoOffAbove = v[1]; autoPwm = v[2];
    autoMode = true;
    sendPrefixed("OK ", copy);
  } else if (!strcmp(body, "PIR") && n == 1) {
    if (v[0] > 63) { sendPrefixed("ERR range ", copy); return; }
    pirPin = v[0];
    pinMode(pirPin, INPUT);  // the sensor drives the line both ways: no pull-up
    pirRaw = digitalRead(pirPin) == HIGH;
    pirRawSince = millis();
    sendPrefixed("OK ", copy);
    pirState = pirRaw;
    sendLine(pirState ? "P 1" : "P 0");  // the host learns the state it starts from
  } else if (!strcmp(body, "SERVO") && n == 2) {
    if (v[0] > 63 || v[1] > 180) { sendPrefixed("ERR range ", copy); return; }
    int8_t slot = -1;
    for (uint8_t i = 0; i < SERVO_SLOTS; i++) {
      if (servoPin[i] == v[0]) { slot = i; break; }
      if (servoPin[i] < 0 && slot < 0) slot = i;
    }
    if (slot < 0) { sendPrefixed("ERR full ", copy); return; }
    if (servoPin[slot] != v[0]) { servos[slot].attach(v[0]); servoPin[slot] = v[0]; }
    servos[slot].write(v[1]);
    sendPrefixed("OK ", copy);
  } else {
    sendPrefixed("ERR syntax ", copy);
  }
}

// One complete received line (without the newline).
static void receiveLine(char *line) {
  uint8_t len = strlen(line);
  if (len && line[len - 1] == '\r') line[--len] = 0;
  if (!len) return;  // the host sends a bare newline to flush a half line
  char *star = strrchr(line, '*');
  if (!star) {
    // Without a checksum only harmless read-only commands, for a human at a serial monitor.
    if (!strcmp(line, "VERSION") || !strcmp(line, "PING")) handle(line);
    else sendLine("ERR checksum");
    return;
  }
  *star = 0;
  char *cs = star + 1;
  char expect[3];
  snprintf(expect, sizeof expect, "%02X", xorOf(line));
  if (strlen(cs) != 2 || strcmp(cs, expect)) { sendLine("ERR checksum"); return; }
  handle(line);
}

// -- main loop ----------------------------------------------------------------

static void report() {
  int adc = analogRead(LIGHT_PIN);
  if (autoMode) {  // hysteresis: on below one threshold, off above a higher one
    if (adc < (int)autoOnBelow) setIr(autoPwm);
    else if (adc > (int)autoOffAbove) setIr(0);
  }
  char line[20];
  snprintf(line, sizeof line, "B %d %d", adc, irPwm);
  sendLine(line);
}

// Reports each PIR output change that held PIR_DEBOUNCE_MS (a long wire
// picks up spikes from the servos and the IR driver).
static void pollPir() {
  if (pirPin < 0) return;
  bool raw = digitalRead(pirPin) == HIGH;
  unsigned long now = millis();
  if (raw != pirRaw) { pirRaw = raw; pirRawSince = now; return; }
  if (raw != pirState && now - pirRawSince >= PIR_DEBOUNCE_MS) {
    pirState = raw;
    sendLine(pirState ? "P 1" : "P 0");
  }
}

void setup() {
  pinMode(IR_PIN, OUTPUT);
  setIr(0);
  Serial.begin(BAUDRATE);
  sendVersion("HELLO");  // tells the host this device (re)started and forgot its state
}

void loop() {
  while (Serial.available()) {
    char c = Serial.read();
    if (c == '\n') {
      if (rxOverflow) sendLine("ERR long");
      else { rx[rxLen] = 0; receiveLine(rx); }
      rxLen = 0;
      rxOverflow = false;
    } else if (rxLen < MAX_COMMAND) {
      rx[rxLen++] = c;
    } else {
      rxOverflow = true;
    }
  }
  pollPir();
  if (rateMs && millis() - lastReport >= rateMs) {
    lastReport += rateMs;
    if (millis() - lastReport > rateMs) lastReport = millis();  // fell behind: do not burst
    report();
  }
}
