ExUnit.configure(exclude: [:live, :gemini, :vertex])
ExUnit.start()
