ExUnit.start()
ExUnit.configure(exclude: [:live, :gemini, :vertex])
