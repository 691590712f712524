import type { AppInfo } from "./api/app";

/** An AppInfo as the app reports it on a machine with nothing set up; override what a test needs. */
export function appInfo(over: Partial<AppInfo> = {}): AppInfo {
  return {
    version: "0.1.0",
    mode: "auto",
    data_dir: "/home/u/.local/share/understudy",
    config_path: "/home/u/.config/understudy/config.toml",
    config_problem: null,
    openai_key: "none",
    openai_base_url: "https://api.openai.com/v1",
    openai_model: "gpt-4o-mini",
    local_model: null,
    first_run: true,
    ...over,
  };
}
