using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using PgFirst.Testing;

namespace WebApp.Tests;

/// <summary>
/// The demo app on a real Kestrel server on a free loopback port, so that a real browser can reach it (the in-memory
/// <c>TestServer</c> of <see cref="WebApplicationFactory{TEntryPoint}"/> cannot be). Configured like the other WebApp
/// tests: this test's PostgreSQL server and schema, the Redis server (keys prefixed with the schema), and any further
/// settings.
/// </summary>
public sealed class BrowserApp : IAsyncDisposable
{
    private readonly WebApplicationFactory<Program> _factory;

    private BrowserApp(WebApplicationFactory<Program> factory, Uri baseUrl)
    {
        _factory = factory;
        BaseUrl = baseUrl;
    }

    /// <summary>Gets the root URL the app listens on, such as <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri BaseUrl { get; }

    /// <summary>Gets the app's services (to read options, or seed and inspect state behind the UI).</summary>
    public IServiceProvider Services => _factory.Services;

    /// <summary>
    /// Builds the app and starts it on Kestrel. Start-up runs in full (schema applied, hosted services started), so a
    /// start-up failure throws here.
    /// </summary>
    /// <param name="postgres">The PostgreSQL server: <c>ConnectionStrings:Postgres</c>.</param>
    /// <param name="redis">The Redis server: <c>ConnectionStrings:Redis</c>.</param>
    /// <param name="schema">The test's schema: <c>PgFirst:SchemaName</c>.</param>
    /// <param name="backend"><c>PgFirst:Backend</c> (<c>"PostgreSql"</c> or <c>"Redis"</c>); null keeps the app's default.</param>
    /// <param name="settings">Further configuration keys (<c>"PgSessions:IdleTimeout"</c> …), applied last.</param>
    public static BrowserApp Start(
        PostgresServer postgres,
        RedisServer redis,
        string schema,
        string? backend = null,
        IReadOnlyDictionary<string, string?>? settings = null)
    {
        ArgumentNullException.ThrowIfNull(postgres);
        ArgumentNullException.ThrowIfNull(redis);

        var all = new Dictionary<string, string?>
        {
            ["ConnectionStrings:Postgres"] = postgres.ConnectionString,
            ["ConnectionStrings:Redis"] = redis.Configuration,
            ["PgFirst:SchemaName"] = schema,

            // Redis isolation by key prefix, as the schema isolates PostgreSQL (an unknown key is ignored by older apps).
            ["PgFirst:Redis:KeyPrefix"] = schema + ":",
        };
        if (backend is not null)
        {
            all["PgFirst:Backend"] = backend;
        }

        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            all[key] = value;
        }

        var factory = new SettingsFactory(all);
        try
        {
            // Port 0 makes the factory bind http://127.0.0.1:0, so Kestrel picks a free port. Not through
            // WithWebHostBuilder: its derived factory builds the host through the parent's CreateHost, which reads the
            // parent's port (unset), and the app would silently listen on Kestrel's default, localhost:5000.
            factory.UseKestrel(0);
            factory.StartServer();
            return new BrowserApp(factory, ListeningAddress(factory));
        }
        catch
        {
            factory.Dispose();
            throw;
        }
    }

    /// <summary>Returns the absolute URL of <paramref name="pathAndQuery"/> (such as <c>"/orders?sku=tea"</c>) on this app.</summary>
    public Uri Url(string pathAndQuery) => new(BaseUrl, pathAndQuery);

    /// <summary>Stops the server and disposes the app.</summary>
    public ValueTask DisposeAsync() => _factory.DisposeAsync();

    private sealed class SettingsFactory(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }
        }
    }

    private static Uri ListeningAddress(WebApplicationFactory<Program> factory)
    {
        // The bound address (with the port Kestrel picked) is on the server's IServerAddressesFeature once it started.
        var addresses = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        var address = addresses.FirstOrDefault(a => a.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
            ?? throw new InvalidOperationException(
                $"Kestrel started but reports no http:// address (addresses: {string.Join(", ", addresses)}).");
        var url = new Uri(address.EndsWith('/') ? address : address + "/");
        return url.Port != 0 ? url : throw new InvalidOperationException($"Kestrel reports {address}, not the port it bound.");
    }
}

/// <summary>
/// A headless Chromium driven through chromedriver, both from the Debian packages (<c>chromium</c>,
/// <c>chromium-driver</c>): no Selenium Manager, no downloads. Each instance has its own profile directory, deleted on
/// <see cref="Dispose"/>. Also holds the helpers browser tests share: <see cref="WaitUntil"/> and <see cref="SaveScreenshot"/>.
/// </summary>
public sealed class HeadlessChromium : IDisposable
{
    /// <summary>The Chromium launcher the Debian package installs.</summary>
    public const string BrowserPath = "/usr/bin/chromium";

    /// <summary>The chromedriver the Debian package <c>chromium-driver</c> installs (same version as the browser).</summary>
    public const string DriverPath = "/usr/bin/chromedriver";

    /// <summary>The variable naming the folder screenshots go to; <c>./pgfirst test</c> sets it to <c>artifacts/</c>.</summary>
    public const string ArtifactsVariable = "PGFIRST_ARTIFACTS";

    private static readonly TimeSpan DefaultWait = TimeSpan.FromSeconds(15);

    private readonly string _profileDirectory;

    private HeadlessChromium(ChromeDriver driver, string profileDirectory)
    {
        Driver = driver;
        _profileDirectory = profileDirectory;
    }

    /// <summary>Gets the driver.</summary>
    public ChromeDriver Driver { get; }

    /// <summary>Starts chromedriver and a headless Chromium with a fresh profile and a 1400×1000 window.</summary>
    /// <exception cref="InvalidOperationException">Chromium or chromedriver is not installed.</exception>
    public static HeadlessChromium Start()
    {
        foreach (var (path, package) in new[] { (BrowserPath, "chromium"), (DriverPath, "chromium-driver") })
        {
            if (!File.Exists(path))
            {
                throw new InvalidOperationException(
                    $"The browser tests need {path} (Debian package {package}), and it is missing. Run the tests with " +
                    "./pgfirst test, which installs the packages chromium and chromium-driver, or install them yourself " +
                    "(apt-get install chromium chromium-driver).");
            }
        }

        // Both paths are given, so Selenium has no reason to run Selenium Manager; offline keeps it from downloading if it does.
        Environment.SetEnvironmentVariable("SE_OFFLINE", "true");

        var profileDirectory = Path.Combine(Path.GetTempPath(), "pgfirst-chromium", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(profileDirectory);
        var options = new ChromeOptions { BinaryLocation = BrowserPath };
        options.AddArguments(
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--window-size=1400,1000",
            $"--user-data-dir={profileDirectory}");

        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(DriverPath)!, Path.GetFileName(DriverPath));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        try
        {
            return new HeadlessChromium(new ChromeDriver(service, options, TimeSpan.FromSeconds(60)), profileDirectory);
        }
        catch
        {
            service.Dispose();
            DeleteProfile(profileDirectory);
            throw;
        }
    }

    /// <summary>
    /// Polls <paramref name="condition"/> until it returns something other than null or <see langword="false"/>, and
    /// returns that. An element not found yet, or gone stale, counts as "not yet".
    /// </summary>
    /// <param name="driver">The browser.</param>
    /// <param name="condition">What to wait for, such as <c>d => d.FindElements(By.Id("x")).FirstOrDefault()</c>.</param>
    /// <param name="timeout">How long to wait; the default is 15 seconds.</param>
    /// <param name="description">What is awaited, for the failure message.</param>
    /// <exception cref="TimeoutException">The condition did not hold in time; the message has the URL and page source.</exception>
    public static T WaitUntil<T>(IWebDriver driver, Func<IWebDriver, T?> condition, TimeSpan? timeout = null, string? description = null)
    {
        ArgumentNullException.ThrowIfNull(driver);
        ArgumentNullException.ThrowIfNull(condition);

        var limit = timeout ?? DefaultWait;
        var cancellationToken = TestContext.Current.CancellationToken;
        var started = DateTime.UtcNow;
        Exception? last = null;
        while (true)
        {
            try
            {
                var result = condition(driver);
                if (result is not null && result is not false)
                {
                    return result;
                }
            }
            catch (Exception e) when (e is NoSuchElementException or StaleElementReferenceException)
            {
                last = e;
            }

            if (DateTime.UtcNow - started >= limit)
            {
                break;
            }

            cancellationToken.ThrowIfCancellationRequested();
            cancellationToken.WaitHandle.WaitOne(TimeSpan.FromMilliseconds(100));
        }

        throw new TimeoutException(
            $"Waited {limit.TotalSeconds:0.#} s for {description ?? "a condition"} in vain. Current URL: {driver.Url}{Environment.NewLine}" +
            $"Page source (start):{Environment.NewLine}{Snippet(driver.PageSource)}",
            last);
    }

    /// <summary>
    /// Saves a PNG screenshot of the current page as <paramref name="name"/> (".png" is added when missing) in the
    /// artifacts folder: <c>$PGFIRST_ARTIFACTS</c> if set, else <c>artifacts/</c> at the repository root. Overwrites.
    /// </summary>
    /// <returns>The full path of the file.</returns>
    public static string SaveScreenshot(IWebDriver driver, string name)
    {
        ArgumentNullException.ThrowIfNull(driver);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);

        var fileName = Path.GetFileName(name);
        if (!fileName.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
        {
            fileName += ".png";
        }

        var directory = ArtifactsDirectory();
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, fileName);
        File.WriteAllBytes(path, ((ITakesScreenshot)driver).GetScreenshot().AsByteArray);
        return path;
    }

    /// <summary>Returns the folder test artifacts (screenshots) go to; see <see cref="SaveScreenshot"/>.</summary>
    public static string ArtifactsDirectory()
    {
        var configured = Environment.GetEnvironmentVariable(ArtifactsVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return Path.GetFullPath(configured);
        }

        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "PgFirst.sln")))
            {
                return Path.Combine(directory.FullName, "artifacts");
            }
        }

        throw new InvalidOperationException(
            $"No PgFirst.sln above {AppContext.BaseDirectory} to put artifacts/ beside: set {ArtifactsVariable} to a folder.");
    }

    /// <summary>Quits the browser and chromedriver and deletes the profile directory.</summary>
    public void Dispose()
    {
        try
        {
            Driver.Quit();
        }
        finally
        {
            Driver.Dispose();
            DeleteProfile(_profileDirectory);
        }
    }

    private static string Snippet(string? source)
    {
        const int Length = 2000;
        if (string.IsNullOrEmpty(source))
        {
            return "(empty)";
        }

        return source.Length <= Length ? source : source[..Length] + $"… ({source.Length - Length} more characters)";
    }

    private static void DeleteProfile(string directory)
    {
        // Chromium's helper processes can hold files for a moment after it quit. A profile still locked after two
        // seconds stays in the temp folder rather than turning a passing test into a failing one.
        for (var attempt = 1; attempt <= 10 && Directory.Exists(directory); attempt++)
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Thread.Sleep(200);
            }
        }
    }
}
