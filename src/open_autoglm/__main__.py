from open_autoglm.cli import main

# the guard matters to engines that spawn worker processes (vLLM's engine core)
if __name__ == "__main__":
    raise SystemExit(main())
