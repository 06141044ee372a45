"""The desktop UI: answer popup, region overlay and tray icon (Tk on the main thread, pystray on its own)."""
